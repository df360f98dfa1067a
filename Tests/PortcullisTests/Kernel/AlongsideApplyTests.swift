import Foundation
import Testing

/// `apply --alongside-docker` against the kernel, in namespaces the tests create, over real
/// Docker 20.10 captures: only DOCKER-USER and FORWARD's jump to it change, rollback puts back
/// exactly what was there, a jump moved by hand is repaired and said so, and drift is looked
/// for only in DOCKER-USER.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct AlongsideApplyTests {
    static let binary = CommandLineTests.binary
    static let policy = Repo.policies + "/web-stack.policy"

    final class Scratch {
        let path = NSTemporaryDirectory() + "portcullis-alongside-\(getpid())-\(UUID().uuidString.prefix(8))"
        deinit { try? FileManager.default.removeItem(atPath: path) }
        var state: String { path + "/state" }
    }

    func portcullis(_ namespace: TestNamespace, _ arguments: [String], _ state: Scratch) -> CommandResult {
        namespace.exec([Self.binary] + arguments + ["--state-dir", state.state])
    }

    /// A namespace holding what a Docker 20.10 daemon wrote (IPv4 and IPv6 for s19).
    func dockerHost(_ capture: String) throws -> TestNamespace {
        let namespace = try TestNamespace()
        let parts = Repo.read(Repo.fixtures + "/docker-20.10/\(capture).rules").components(
            separatedBy: "#### ip6tables\n")
        for (tool, text) in zip(["iptables-restore", "ip6tables-restore"], parts) {
            let load = namespace.exec([tool], input: text)
            try #require(load.status == 0, "\(capture): \(load.stderr)")
        }
        return namespace
    }

    /// iptables-save and ip6tables-save, counters zeroed.
    func saved(_ namespace: TestNamespace) -> String { namespace.savedIptables() + namespace.savedIp6tables() }

    /// Every line that does not name DOCKER-USER: Docker's chains and everyone else's.
    func others(_ text: String) -> [Substring] {
        text.split(separator: "\n").filter { !$0.contains("DOCKER-USER") }
    }

    func rules(_ namespace: TestNamespace, _ chain: String, _ save: String = "iptables-save") -> [String] {
        namespace.exec([save]).stdout.split(separator: "\n").filter { $0.hasPrefix("-A \(chain) ") }.map(String.init)
    }

    func moveJump(_ namespace: TestNamespace, to position: Int) throws {
        for command in [
            ["iptables", "-D", "FORWARD", "-j", "DOCKER-USER"],
            ["iptables", "-I", "FORWARD", "\(position)", "-j", "DOCKER-USER"],
        ] {
            let result = namespace.exec(command)
            try #require(result.status == 0, "\(command): \(result.stderr)")
        }
    }

    /// Apply, re-apply, a jump moved by hand (planned, then repaired), rollback: Docker's chains
    /// are byte-identical throughout, and rollback gives back the DOCKER-USER and jump of before.
    @Test(arguments: ["s06-two-networks", "s10-multi-network", "s19-ip6tables-user-networks"])
    func onlyDockerUserChangesAndRollbackRestoresIt(_ capture: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try dockerHost(capture)
        let state = Scratch()
        try moveJump(namespace, to: 3)
        let loaded = saved(namespace)

        let apply = portcullis(namespace, ["apply", Self.policy, "--alongside-docker"], state)
        try #require(apply.status == 0, "\(apply.stderr)")
        #expect(apply.stdout.contains("repaired: FORWARD's jump to DOCKER-USER was at position 3, now first"))
        #expect(
            apply.stdout.contains("(docker-20.10, iptables, alongside Docker: only DOCKER-USER): replaced DOCKER-USER"))
        let applied = saved(namespace)
        #expect(others(applied) == others(loaded), "\(capture): a chain other than DOCKER-USER changed")
        #expect(rules(namespace, "FORWARD").first == "-A FORWARD -j DOCKER-USER")
        #expect(rules(namespace, "FORWARD").filter { $0.contains("DOCKER-USER") }.count == 1)
        let compiled = inProcess {
            try $0.runCompile(Self.policy, layout: nil, backend: nil, output: nil, alongsideDocker: true)
        }
        #expect(
            rules(namespace, "DOCKER-USER")
                == compiled.stdout.split(separator: "\n").filter { $0.hasPrefix("-A ") }.map(String.init))

        let again = portcullis(namespace, ["apply", Self.policy, "--alongside-docker"], state)
        #expect(again.status == 0 && again.stdout.hasPrefix("no changes"), "\(again.stdout)\(again.stderr)")

        // The daemon (or another tool) moves the jump: plan says so, apply repairs it.
        try moveJump(namespace, to: 2)
        let plan = portcullis(namespace, ["plan", Self.policy, "--alongside-docker"], state)
        #expect(plan.status == 1, "\(plan.stderr)")
        #expect(plan.stdout.contains("repair: FORWARD's jump to DOCKER-USER was at position 2; apply puts it first"))
        #expect(plan.stdout.contains("iptables filter FORWARD: same rules, new order"))
        let repaired = portcullis(namespace, ["apply", Self.policy, "--alongside-docker"], state)
        #expect(repaired.status == 0, "\(repaired.stderr)")
        #expect(repaired.stdout.contains("repaired: FORWARD's jump to DOCKER-USER was at position 2, now first"))
        #expect(saved(namespace) == applied)

        // The repair was generation 2: its rollback puts the jump back where it was found.
        let undoRepair = portcullis(namespace, ["rollback"], state)
        #expect(undoRepair.status == 0, "\(undoRepair.stderr)")
        #expect(rules(namespace, "FORWARD")[1] == "-A FORWARD -j DOCKER-USER")
        let back = portcullis(namespace, ["rollback"], state)
        #expect(back.status == 0, "\(back.stderr)")
        let after = saved(namespace)
        #expect(after == loaded, "\(capture): rollback did not restore DOCKER-USER and its jump")
    }

    /// The IPv6 DOCKER-USER docker-20.10 lacks is created beside the daemon's ip6tables chains,
    /// with its jump first, and removed again on rollback.
    @Test func ip6tablesDockerUserIsCreatedAndRemovedAgain() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try dockerHost("s06-two-networks")
        try #require(!namespace.exec(["ip6tables-save"]).stdout.contains("DOCKER-USER"))
        let state = Scratch()
        let policy = NSTemporaryDirectory() + "alongside-v6-\(getpid()).policy"
        defer { try? FileManager.default.removeItem(atPath: policy) }
        try """
        host { ip6tables on }
        network front {
            bridge br-v6
            subnet 198.18.40.0/24
            subnet 2001:db8:40::/64
        }
        container a {
            attach front 198.18.40.2
            attach front 2001:db8:40::2
        }
        container b {
            attach front 198.18.40.3
            attach front 2001:db8:40::3
        }
        deny a -> b port 22/tcp
        """.write(toFile: policy, atomically: true, encoding: .utf8)
        let loaded = saved(namespace)
        let apply = portcullis(namespace, ["apply", policy, "--alongside-docker"], state)
        try #require(apply.status == 0, "\(apply.stderr)")
        #expect(rules(namespace, "FORWARD", "ip6tables-save").first == "-A FORWARD -j DOCKER-USER")
        #expect(rules(namespace, "DOCKER-USER", "ip6tables-save").contains { $0.contains("2001:db8:40::3/128") })
        #expect(others(namespace.savedIptables()) == others(loaded))
        // ip6tables had no filter table: the apply created it, with nothing but DOCKER-USER.
        let builtins = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", "COMMIT"]
        #expect(others(namespace.savedIp6tables()).allSatisfy { builtins.contains(String($0)) })
        let back = portcullis(namespace, ["rollback"], state)
        #expect(back.status == 0, "\(back.stderr)")
        #expect(saved(namespace) == loaded)
    }

    /// Rules in DOCKER-USER that Portcullis did not write: refused on a first apply, replaced
    /// with --take-over and back on rollback; changed by hand after an apply: rollback refuses,
    /// and audit names the rule, in DOCKER-USER only.
    @Test func foreignAndChangedDockerUserRules() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try dockerHost("s06-two-networks")
        let state = Scratch()
        let foreign = ["iptables", "-I", "DOCKER-USER", "-s", "198.18.99.1", "-j", "DROP"]
        try #require(namespace.exec(foreign).status == 0)
        let loaded = saved(namespace)
        let refused = portcullis(namespace, ["apply", Self.policy, "--alongside-docker"], state)
        #expect(refused.status == 2)
        #expect(
            refused.stderr.contains(
                "iptables DOCKER-USER holds 1 rule Portcullis did not write (-A DOCKER-USER -s 198.18.99.1/32 -j DROP)"),
            "\(refused.stderr)")
        #expect(saved(namespace) == loaded)

        let taken = portcullis(namespace, ["apply", Self.policy, "--alongside-docker", "--take-over"], state)
        try #require(taken.status == 0, "\(taken.stderr)")
        #expect(!rules(namespace, "DOCKER-USER").contains { $0.contains("198.18.99.1") })

        // Someone adds a rule: audit sees it in DOCKER-USER, rollback refuses to undo it.
        try #require(
            namespace.exec(["iptables", "-I", "DOCKER-USER", "2", "-s", "198.18.99.2", "-j", "DROP"]).status == 0)
        let audit = namespace.exec([Self.binary, "audit", Self.policy, "--live", "--alongside-docker"])
        #expect(audit.status == 1)
        #expect(audit.stdout.contains("unexpected-rule in filter/DOCKER-USER"), "\(audit.stdout)")
        #expect(!audit.stdout.contains("in filter/DOCKER ("), "\(audit.stdout)")
        let blocked = portcullis(namespace, ["rollback"], state)
        #expect(blocked.status == 2)
        #expect(
            blocked.stderr.contains("iptables DOCKER-USER changed since generation 1 was applied"), "\(blocked.stderr)")
        let forced = portcullis(namespace, ["rollback", "--force"], state)
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(saved(namespace) == loaded)
    }

    /// A generation applied alongside is not silently replaced by one that owns Docker's chains.
    @Test func switchingScopeNeedsARollbackFirst() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try dockerHost("s06-two-networks")
        let state = Scratch()
        let apply = portcullis(namespace, ["apply", Self.policy, "--alongside-docker"], state)
        try #require(apply.status == 0, "\(apply.stderr)")
        let whole = portcullis(namespace, ["apply", Self.policy, "--prune"], state)
        #expect(whole.status == 2)
        #expect(
            whole.stderr.contains(
                "was applied alongside Docker, owning only DOCKER-USER; roll it back before applying owning the layout's chains"
            ), "\(whole.stderr)")
    }

    /// docker-29 on nftables: only the portcullis-user table comes and goes; Docker's table stays.
    @Test func docker29NftablesOwnsOnlyItsTable() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = Scratch()
        // Docker 29's own table for a published port, as the layout writes it (no user rules).
        let dockerTables = compiledRuleset(
            Repo.fixtures + "/docker-29-nftables/s72-usernet-portmap.policy", layout: "docker-29", backend: "nftables")
        try #require(dockerTables.status == 0 && !dockerTables.stdout.contains("portcullis-user"))
        let docker = namespace.exec(
            ["nft", "-f", "-"], input: dockerTables.stdout)
        try #require(docker.status == 0, "\(docker.stderr)")
        let loaded = namespace.exec(["nft", "list", "ruleset"]).stdout
        let apply = portcullis(
            namespace, ["apply", Self.policy, "--alongside-docker", "--layout", "docker-29", "--backend", "nftables"],
            state)
        try #require(apply.status == 0, "\(apply.stderr)")
        let tables = namespace.exec(["nft", "list", "tables"]).stdout
        #expect(tables.contains("table ip portcullis-user"))
        #expect(
            Self.table("ip docker-bridges", in: namespace.exec(["nft", "list", "ruleset"]).stdout)
                == Self.table("ip docker-bridges", in: loaded))
        let back = portcullis(namespace, ["rollback"], state)
        #expect(back.status == 0, "\(back.stderr)")
        #expect(namespace.exec(["nft", "list", "ruleset"]).stdout == loaded)
    }

    /// One table's block of an `nft list ruleset` listing.
    static func table(_ name: String, in listing: String) -> String {
        guard let start = listing.range(of: "table \(name) {") else { return "" }
        let rest = listing[start.lowerBound...]
        guard let end = rest.range(of: "\n}\n") else { return String(rest) }
        return String(rest[..<end.upperBound])
    }
}
