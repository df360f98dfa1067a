import Foundation
import JanssonKit
import Testing

/// `portcullis audit POLICY --live` in a network namespace: a policy is applied, the live
/// ruleset is changed in one way at a time, and the audit must find each change (naming the
/// table, the chain and the rule) and nothing once the ruleset is put back.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct LiveDriftTests {
    static let policy = Repo.policies + "/web-stack.policy"

    struct Mutation: Sendable, CustomStringConvertible {
        let name: String
        let commands: [[String]]
        /// Findings that must be reported: id, table, chain.
        let expected: [(id: String, table: String, chain: String)]
        var description: String { name }
    }

    func ipt(_ words: String) -> [String] { ["iptables"] + Self.split(words) }
    func nft(_ words: String) -> [String] { ["nft"] + Self.split(words) }

    /// Splits on spaces; double quotes group.
    static func split(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        var quoted = false
        var started = false
        for c in text {
            if c == "\"" {
                quoted.toggle()
                started = true
            } else if c == " " && !quoted {
                if started { words.append(current) }
                current = ""
                started = false
            } else {
                current.append(c)
                started = true
            }
        }
        if started { words.append(current) }
        return words
    }

    static let allowAPI =
        "-s 198.18.1.10/32 -d 198.18.2.10/32 -i br-front -o br-back -p tcp -m tcp --dport 8000 -m comment --comment \"portcullis: allow web -> api port 8000/tcp\" -j ACCEPT"

    var iptablesMutations: [Mutation] {
        [
            Mutation(
                name: "delete a policy rule", commands: [ipt("-D DOCKER-USER 2")],
                expected: [("missing-rule", "filter", "DOCKER-USER")]),
            Mutation(
                name: "add a rule", commands: [ipt("-I DOCKER-USER 1 -s 198.18.9.9 -j ACCEPT")],
                expected: [("unexpected-rule", "filter", "DOCKER-USER")]),
            Mutation(
                name: "move RETURN first", commands: [ipt("-D DOCKER-USER 4"), ipt("-I DOCKER-USER 1 -j RETURN")],
                expected: [("rule-order", "filter", "DOCKER-USER")]),
            Mutation(
                name: "change a port",
                commands: [ipt("-R DOCKER-USER 2 " + Self.allowAPI.replacingOccurrences(of: "8000 ", with: "8001 "))],
                expected: [("changed-rule", "filter", "DOCKER-USER")]),
            Mutation(
                name: "flush DOCKER-USER", commands: [ipt("-F DOCKER-USER")],
                expected: [("missing-rule", "filter", "DOCKER-USER")]),
            Mutation(
                name: "a foreign nftables table that drops forwarded packets",
                commands: [
                    nft("add table inet foreign"),
                    nft("add chain inet foreign gate { type filter hook forward priority -10 ; policy drop ; }"),
                ],
                expected: [("foreign-table-overrides", "foreign", "gate")]),
            Mutation(
                name: "unhook DOCKER-USER", commands: [ipt("-D FORWARD -j DOCKER-USER")],
                expected: [("missing-rule", "filter", "FORWARD"), ("chain-not-hooked", "filter", "DOCKER-USER")]),
            Mutation(
                name: "FORWARD policy ACCEPT", commands: [ipt("-P FORWARD ACCEPT")],
                expected: [("policy-differs", "filter", "FORWARD")]),
            Mutation(
                name: "delete DOCKER-USER",
                commands: [ipt("-D FORWARD -j DOCKER-USER"), ipt("-F DOCKER-USER"), ipt("-X DOCKER-USER")],
                expected: [("chain-missing", "filter", "DOCKER-USER")]),
            Mutation(
                name: "delete a DNAT",
                commands: [
                    ipt(
                        "-t nat -D DOCKER ! -i br-front -p tcp -m tcp --dport 443 -j DNAT --to-destination 198.18.1.10:8443"
                    )
                ],
                expected: [("missing-rule", "nat", "DOCKER")]),
            Mutation(
                name: "DNAT to another address",
                commands: [
                    ipt("-t nat -R DOCKER 5 ! -i br-front -p tcp --dport 80 -j DNAT --to-destination 198.18.1.11:8080")
                ],
                expected: [("changed-rule", "nat", "DOCKER")]),
            Mutation(
                name: "flush nat POSTROUTING", commands: [ipt("-t nat -F POSTROUTING")],
                expected: [("missing-rule", "nat", "POSTROUTING")]),
            Mutation(
                name: "delete an isolation drop", commands: [ipt("-D DOCKER-ISOLATION-STAGE-2 1")],
                expected: [("missing-rule", "filter", "DOCKER-ISOLATION-STAGE-2")]),
            Mutation(
                name: "move the back network's ICC drop first",
                commands: [
                    ipt("-D FORWARD -i br-back -o br-back -j DROP"), ipt("-I FORWARD 1 -i br-back -o br-back -j DROP"),
                ],
                expected: [("rule-order", "filter", "FORWARD")]),
            Mutation(
                name: "publish another port",
                commands: [ipt("-A DOCKER -d 198.18.1.10/32 ! -i br-front -o br-front -p tcp --dport 22 -j ACCEPT")],
                expected: [("unexpected-rule", "filter", "DOCKER")]),
            Mutation(
                name: "ICC on front turned to DROP", commands: [ipt("-R FORWARD 7 -i br-front -o br-front -j DROP")],
                expected: [("changed-rule", "filter", "FORWARD")]),
            Mutation(
                name: "a duplicated policy rule", commands: [ipt("-I DOCKER-USER 3 " + Self.allowAPI)],
                expected: [("unexpected-rule", "filter", "DOCKER-USER")]),
            Mutation(
                name: "replies rule changed to new connections",
                commands: [ipt("-R DOCKER-USER 1 -m conntrack --ctstate NEW -j ACCEPT")],
                expected: [("changed-rule", "filter", "DOCKER-USER")]),
            Mutation(
                name: "a raw PREROUTING drop", commands: [ipt("-t raw -A PREROUTING -d 198.18.1.10/32 -j DROP")],
                expected: [("foreign-table-overrides", "raw", "PREROUTING")]),
            Mutation(
                name: "DNAT from another interface",
                commands: [
                    ipt("-t nat -R DOCKER 4 ! -i br-x -p tcp --dport 443 -j DNAT --to-destination 198.18.1.10:8443")
                ],
                expected: [("changed-rule", "nat", "DOCKER")]),
        ]
    }

    /// Runs `portcullis audit` in the namespace and returns its findings as (id, table, chain, rule).
    func audit(_ namespace: TestNamespace, _ extra: [String] = []) throws -> (Int32, [JSON]) {
        let result = namespace.exec(
            [CommandLineTests.binary, "audit", Self.policy, "--live", "--format", "json"] + extra)
        try #require(result.status == 0 || result.status == 1, "\(result.stderr)")
        let document = try JSON.parse(result.stdout)
        return (result.status, try #require(document["findings"]?.arrayValue))
    }

    func check(_ mutation: Mutation, _ findings: [JSON], status: Int32) {
        #expect(status == 1, "\(mutation): no drift reported")
        for (id, table, chain) in mutation.expected {
            #expect(
                findings.contains {
                    $0["id"]?.stringValue == id && $0["table"]?.stringValue == table
                        && $0["chain"]?.stringValue == chain
                }, "\(mutation): no \(id) in \(table)/\(chain) among \(findings.map { $0["id"]?.stringValue ?? "" })")
        }
        // Rule findings name the rule; a rule the policy wrote is traced to its policy line.
        for finding in findings
        where ["missing-rule", "changed-rule", "rule-order"].contains(finding["id"]?.stringValue) {
            #expect(finding["rule"]?.stringValue?.isEmpty == false, "\(mutation): \(finding)")
            let missing = finding["id"]?.stringValue == "missing-rule"
            let wanted = (missing ? finding["rule"] : finding["policy_rule"])?.stringValue ?? ""
            let line = (missing ? finding["location"] : finding["policy_location"])?.stringValue ?? ""
            if wanted.contains("portcullis: allow") {
                #expect(line.contains("web-stack.policy:"), "\(mutation): \(finding)")
            }
        }
    }

    @Test func iptablesDriftIsFoundOneChangeAtATime() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = NSTemporaryDirectory() + "portcullis-drift-\(getpid())-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let applied = namespace.exec([CommandLineTests.binary, "apply", Self.policy, "--state-dir", state])
        try #require(applied.status == 0, "\(applied.stderr)")
        let baseline = namespace.exec(["iptables-save"]).stdout
        let (cleanStatus, clean) = try audit(namespace)
        #expect(cleanStatus == 0 && clean.isEmpty, "\(clean)")

        let mutations = iptablesMutations
        #expect(mutations.count == 20)
        for mutation in mutations {
            for command in mutation.commands {
                let result = namespace.exec(command)
                try #require(result.status == 0, "\(mutation): \(command): \(result.stderr)")
            }
            let (status, findings) = try audit(namespace)
            check(mutation, findings, status: status)
            // Back to the applied ruleset.
            _ = namespace.exec(["nft", "delete", "table", "inet", "foreign"])
            _ = namespace.exec(["iptables", "-t", "raw", "-F"])
            let restored = namespace.exec(["iptables-restore"], input: baseline)
            try #require(restored.status == 0, "\(restored.stderr)")
        }
        let (finalStatus, final) = try audit(namespace)
        #expect(finalStatus == 0 && final.isEmpty, "\(final)")
    }

    /// The handle of the first rule of a chain whose listing contains `text`.
    func handle(_ namespace: TestNamespace, _ table: String, _ chain: String, _ text: String) throws -> String {
        let listing = namespace.exec(["nft", "-a", "list", "chain", "ip", table, chain]).stdout
        let line = try #require(listing.split(separator: "\n").first { $0.contains(text) && $0.contains("# handle ") })
        return String(line.split(separator: " ").last!)
    }

    @Test func nftablesDriftIsFoundOneChangeAtATime() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = NSTemporaryDirectory() + "portcullis-drift-\(getpid())-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let applied = namespace.exec(
            [CommandLineTests.binary, "apply", Self.policy, "--backend", "nftables", "--state-dir", state])
        try #require(applied.status == 0, "\(applied.stderr)")
        let baseline = namespace.exec(["nft", "list", "ruleset"]).stdout
        let nftables = ["--backend", "nftables"]
        let (cleanStatus, clean) = try audit(namespace, nftables)
        #expect(cleanStatus == 0 && clean.isEmpty, "\(clean)")

        let allow = "iifname \"br-front\" oifname \"br-back\" ip saddr 198.18.1.10 ip daddr 198.18.2.10 tcp dport"
        let mutations: [(Mutation, () throws -> [[String]])] = [
            (
                Mutation(
                    name: "delete a policy rule", commands: [], expected: [("missing-rule", "filter", "DOCKER-USER")]),
                {
                    [
                        nft(
                            "delete rule ip filter DOCKER-USER handle "
                                + (try handle(namespace, "filter", "DOCKER-USER", "dport 8000")))
                    ]
                }
            ),
            (
                Mutation(name: "add a rule", commands: [], expected: [("unexpected-rule", "filter", "DOCKER-USER")]),
                { [nft("insert rule ip filter DOCKER-USER ip saddr 198.18.9.9 accept")] }
            ),
            (
                Mutation(name: "move return first", commands: [], expected: [("rule-order", "filter", "DOCKER-USER")]),
                {
                    [
                        nft(
                            "delete rule ip filter DOCKER-USER handle "
                                + (try handle(namespace, "filter", "DOCKER-USER", "return"))),
                        nft("insert rule ip filter DOCKER-USER return"),
                    ]
                }
            ),
            (
                Mutation(name: "change a port", commands: [], expected: [("changed-rule", "filter", "DOCKER-USER")]),
                {
                    [
                        nft(
                            "replace rule ip filter DOCKER-USER handle "
                                + (try handle(namespace, "filter", "DOCKER-USER", "dport 8000"))
                                + " \(allow) 8001 accept")
                    ]
                }
            ),
            (
                Mutation(
                    name: "flush DOCKER-USER", commands: [], expected: [("missing-rule", "filter", "DOCKER-USER")]),
                { [nft("flush chain ip filter DOCKER-USER")] }
            ),
            (
                Mutation(
                    name: "a foreign table that drops", commands: [],
                    expected: [("foreign-table-overrides", "foreign", "gate")]),
                {
                    [
                        nft("add table inet foreign"),
                        nft("add chain inet foreign gate { type filter hook forward priority 10 ; policy drop ; }"),
                    ]
                }
            ),
            (
                Mutation(
                    name: "unhook DOCKER-USER", commands: [],
                    expected: [("missing-rule", "filter", "FORWARD"), ("chain-not-hooked", "filter", "DOCKER-USER")]),
                {
                    [
                        nft(
                            "delete rule ip filter FORWARD handle "
                                + (try handle(namespace, "filter", "FORWARD", "jump DOCKER-USER")))
                    ]
                }
            ),
            (
                Mutation(
                    name: "FORWARD policy accept", commands: [], expected: [("policy-differs", "filter", "FORWARD")]),
                { [nft("chain ip filter FORWARD { policy accept ; }")] }
            ),
            (
                Mutation(
                    name: "FORWARD detached from its hook", commands: [],
                    expected: [("chain-not-hooked", "filter", "FORWARD")]),
                {
                    [
                        nft("flush chain ip filter FORWARD"), nft("delete chain ip filter FORWARD"),
                        nft("add chain ip filter FORWARD"),
                    ]
                }
            ),
            (
                Mutation(name: "DNAT to another address", commands: [], expected: [("changed-rule", "nat", "DOCKER")]),
                {
                    [
                        nft(
                            "replace rule ip nat DOCKER handle " + (try handle(namespace, "nat", "DOCKER", "dport 80 "))
                                + " iifname != \"br-front\" tcp dport 80 dnat to 198.18.1.11:8080")
                    ]
                }
            ),
        ]
        for (mutation, commands) in mutations {
            for command in try commands() {
                let result = namespace.exec(command)
                try #require(result.status == 0, "\(mutation): \(command): \(result.stderr)")
            }
            let (status, findings) = try audit(namespace, nftables)
            check(mutation, findings, status: status)
            let restored = namespace.exec(["nft", "-f", "-"], input: "flush ruleset\n" + baseline)
            try #require(restored.status == 0, "\(restored.stderr)")
        }
        let (finalStatus, final) = try audit(namespace, nftables)
        #expect(finalStatus == 0 && final.isEmpty, "\(final)")
    }

    /// A reorder that cannot change a verdict, and another tool's table that only accepts, are
    /// not drift in meaning.
    @Test func harmlessChangesAreNotDrift() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let state = NSTemporaryDirectory() + "portcullis-drift-\(getpid())-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: state) }
        let applied = namespace.exec([CommandLineTests.binary, "apply", Self.policy, "--state-dir", state])
        try #require(applied.status == 0, "\(applied.stderr)")
        for command in [
            // The two DOCKER ACCEPTs are for different ports: swapping them changes no verdict.
            ipt("-D DOCKER 1"),
            ipt("-A DOCKER -d 198.18.1.10/32 ! -i br-front -o br-front -p tcp -m tcp --dport 8443 -j ACCEPT"),
            nft("add table inet watcher"),
            nft("add chain inet watcher gate { type filter hook forward priority 10 ; policy accept ; }"),
            nft("add rule inet watcher gate counter"),
        ] {
            let result = namespace.exec(command)
            try #require(result.status == 0, "\(command): \(result.stderr)")
        }
        let (status, findings) = try audit(namespace)
        #expect(status == 0 && findings.isEmpty, "\(findings)")
    }
}
