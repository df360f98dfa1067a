import Foundation
import PortcullisCompiler
import PortcullisIR
import PortcullisLayouts
import Testing

@testable import PortcullisKernel

/// `--alongside-docker` without the kernel: the owned part each layout projects to, the layouts
/// that refuse, and the planning of FORWARD's jump repair and of a rollback's jumps.
struct AlongsideDockerTests {
    static let header = [
        "# portcullis --alongside-docker: only filter DOCKER-USER, for 'iptables-restore --noflush'",
        "# (declaring the chain flushes it; every other chain stays as the Docker daemon wrote it).",
        "# Keep '-j DOCKER-USER' the first rule of FORWARD: 'portcullis apply --alongside-docker' does.",
    ]

    func compile(_ policy: String, _ arguments: [String] = [], alongside: Bool = true, family: OutputFamily? = nil)
        -> CommandResult
    {
        let layout = arguments.firstIndex(of: "--layout").map { arguments[$0 + 1] }
        let backend = arguments.firstIndex(of: "--backend").map { arguments[$0 + 1] }
        return inProcess {
            try $0.runCompile(
                policy, layout: layout, backend: backend, output: nil, family: family, alongsideDocker: alongside)
        }
    }

    /// The owned part is the full compile's DOCKER-USER, declaration and rules, alone in `*filter`.
    @Test(arguments: ["docker-20.10", "docker-28", "docker-29"])
    func iptablesLayoutsProjectToDockerUserAlone(_ layout: String) throws {
        for policy in ["web-stack", "egress-only", "source-restricted"] {
            let path = Repo.policies + "/\(policy).policy"
            let owned = compile(path, ["--layout", layout])
            try #require(owned.status == 0, "\(owned.stderr)")
            let full = compile(path, ["--layout", layout], alongside: false)
            try #require(full.status == 0, "\(full.stderr)")
            let userRules = full.stdout.split(separator: "\n").filter { $0.hasPrefix("-A DOCKER-USER ") }
            #expect(userRules.count > 1, "\(policy): the policy writes DOCKER-USER rules")
            let expected = Self.header + ["*filter", ":DOCKER-USER - [0:0]"] + userRules.map(String.init) + ["COMMIT"]
            #expect(owned.stdout == expected.joined(separator: "\n") + "\n", "\(layout) \(policy)")
            #expect(!owned.stdout.contains(":FORWARD") && !owned.stdout.contains("-A FORWARD"))
            #expect(!owned.stdout.contains(":DOCKER -"))
        }
    }

    /// With IPv6, each family's file holds its own DOCKER-USER, for its own restore tool.
    @Test func dualStackProjectsBothFamilies() throws {
        let owned = compile(Repo.policies + "/dual-stack.policy", ["--layout", "docker-28"], family: .both)
        try #require(owned.status == 0, "\(owned.stderr)")
        let parts = owned.stdout.components(separatedBy: "#### ip6tables\n")
        try #require(parts.count == 2)
        #expect(parts[0].hasPrefix(Self.header[0]))
        #expect(parts[1].contains("'ip6tables-restore --noflush'"))
        for part in parts {
            let tables = part.split(separator: "\n").filter { $0.hasPrefix("*") || $0.hasPrefix(":") }
            #expect(tables == ["*filter", ":DOCKER-USER - [0:0]"])
        }
    }

    /// docker-29 on nftables: exactly the portcullis-user table of the full output.
    @Test func docker29NftablesProjectsThePortcullisUserTable() throws {
        let path = Repo.policies + "/web-stack.policy"
        let owned = compile(path, ["--layout", "docker-29", "--backend", "nftables"])
        try #require(owned.status == 0, "\(owned.stderr)")
        let full = compile(path, ["--layout", "docker-29", "--backend", "nftables"], alongside: false)
        let start = try #require(full.stdout.range(of: "table ip portcullis-user {"))
        let block = full.stdout[start.lowerBound...].prefix { _ in true }
        let end = try #require(block.range(of: "\n}\n"))
        let table = String(block[..<end.upperBound])
        #expect(owned.stdout.hasSuffix(table))
        #expect(!owned.stdout.contains("docker-bridges"))
        #expect(owned.stdout.hasPrefix("# portcullis --alongside-docker: only the portcullis-user tables"))
        // The JSON backend projects the same table, without the comment JSON cannot hold.
        let json = compile(path, ["--layout", "docker-29", "--backend", "nftables-json"])
        try #require(json.status == 0, "\(json.stderr)")
        #expect(json.stdout.contains("\"portcullis-user\""))
        #expect(!json.stdout.contains("docker-bridges"))
    }

    /// Policy rules a layout writes outside the owned place are named in a warning.
    @Test func rulesOutsideTheOwnedPlaceAreWarnedAbout() {
        let owned = compile(Repo.policies + "/web-stack.policy", ["--layout", "docker-28"])
        #expect(owned.status == 0)
        #expect(owned.stderr.contains("--alongside-docker leaves out 2 rules the layout writes outside DOCKER-USER"))
        #expect(owned.stderr.contains("allow web -> api port 8000/tcp"))
        #expect(compile(Repo.policies + "/web-stack.policy", ["--layout", "docker-20.10"]).stderr.isEmpty)
    }

    @Test(arguments: [
        (["--layout", "docker-1.5"], "layout docker-1.5 has no DOCKER-USER chain", "use a layout of a newer Docker"),
        (
            ["--layout", "native", "--backend", "nftables"], "layout native is for daemons run with",
            "native layout owns"
        ),
        (
            ["--layout", "docker-20.10", "--backend", "nftables"], "which the daemon owns",
            "use --backend iptables"
        ),
    ])
    func layoutsWithoutAUserPlaceRefuse(_ arguments: [String], _ message: String, _ hint: String) {
        let result = compile(Repo.policies + "/seed.policy", arguments)
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("error: --alongside-docker: "), "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(result.stderr.contains("hint: ") && result.stderr.contains(hint), "\(result.stderr)")
    }

    @Test func refusalsComeFromTheScope() {
        #expect(
            AlongsideDocker.scope(layout: "docker-29", firewall: .nftables)
                == .success(AlongsideDocker(place: .table(name: "portcullis-user"))))
        #expect(
            AlongsideDocker.scope(layout: "docker-28", firewall: .iptables)
                == .success(AlongsideDocker(place: .chain(table: "filter", name: "DOCKER-USER"))))
        for (layout, firewall) in [("docker-1.5", Firewall.iptables), ("native", .nftables), ("docker-28", .nftables)] {
            guard case .failure = AlongsideDocker.scope(layout: layout, firewall: firewall) else {
                Issue.record("\(layout) on \(firewall) was given a place")
                continue
            }
        }
    }

    // MARK: FORWARD's jump

    static func forward(_ texts: [String]) -> [SavedTable.RuleLine] {
        texts.map { SavedTable.RuleLine(chain: "FORWARD", text: $0, counters: "[0:0]") }
    }

    static let jump = "-A FORWARD -j DOCKER-USER"
    static let isolation = "-A FORWARD -j DOCKER-ISOLATION-STAGE-1"
    static let accept = "-A FORWARD -o docker0 -j DOCKER"

    @Test func aJumpThatIsFirstNeedsNoRepair() {
        #expect(
            UserChainOwnership.repair(
                forward: Self.forward([Self.jump, Self.isolation]), tool: "iptables", chain: "DOCKER-USER") == nil)
    }

    @Test func aMovedJumpIsDeletedAndInsertedFirst() throws {
        let repair = try #require(
            UserChainOwnership.repair(
                forward: Self.forward([Self.isolation, Self.accept, Self.jump]), tool: "iptables", chain: "DOCKER-USER")
        )
        #expect(repair.positions == [3])
        #expect(repair.applied == "FORWARD's jump to DOCKER-USER was at position 3, now first")
        #expect(repair.planned == "FORWARD's jump to DOCKER-USER was at position 3; apply puts it first")
        #expect(UserChainOwnership.repairLines(repair) == ["-D FORWARD -j DOCKER-USER", "-I FORWARD 1 -j DOCKER-USER"])
    }

    @Test func aMissingOrDoubledJumpIsRepairedToOne() throws {
        let missing = try #require(
            UserChainOwnership.repair(forward: Self.forward([Self.isolation]), tool: "ip6tables", chain: "DOCKER-USER"))
        #expect(missing.positions.isEmpty)
        #expect(missing.applied == "ip6tables FORWARD had no jump to DOCKER-USER, now first")
        #expect(UserChainOwnership.repairLines(missing) == ["-I FORWARD 1 -j DOCKER-USER"])
        let doubled = try #require(
            UserChainOwnership.repair(
                forward: Self.forward([Self.jump, Self.isolation, Self.jump]), tool: "iptables", chain: "DOCKER-USER"))
        #expect(doubled.positions == [1, 3])
        #expect(
            UserChainOwnership.repairLines(doubled) == [
                "-D FORWARD -j DOCKER-USER", "-D FORWARD -j DOCKER-USER", "-I FORWARD 1 -j DOCKER-USER",
            ])
    }

    /// The snapshot keeps the chain's rules with counters and the jumps' positions, and a
    /// rollback's input puts the jump back where it was.
    @Test func snapshotRoundTripsAndRollbackPutsTheJumpBack() throws {
        var live = SavedTable(name: "filter")
        live.chains = [
            .init(name: "FORWARD", policy: "DROP", counters: "[0:0]"),
            .init(name: "DOCKER-USER", policy: "-", counters: "[0:0]"),
        ]
        live.rules =
            Self.forward([Self.isolation, Self.accept, Self.jump]) + [
                SavedTable.RuleLine(chain: "DOCKER-USER", text: "-A DOCKER-USER -j RETURN", counters: "[7:420]")
            ]
        let state = UserChainState(live, chain: "DOCKER-USER")
        #expect(state.exists && state.jumps == [3] && state.ruleTexts == ["-A DOCKER-USER -j RETURN"])
        let text = state.rendered(chain: "DOCKER-USER", withCounters: true)
        #expect(text.hasPrefix("# portcullis alongside-docker: FORWARD jumps to DOCKER-USER at 3\n*filter\n"))
        #expect(text.contains("[7:420] -A DOCKER-USER -j RETURN"))
        let parsed = try #require(UserChainState(parsing: text, chain: "DOCKER-USER"))
        #expect(parsed == state)
        #expect(UserChainOwnership.restoreInput(parsed, live: live, chain: "DOCKER-USER") == nil)

        // After an apply: the jump first, the policy's rules in the chain.
        var applied = live
        applied.rules =
            Self.forward([Self.jump, Self.isolation, Self.accept]) + [
                SavedTable.RuleLine(
                    chain: "DOCKER-USER", text: "-A DOCKER-USER -s 198.18.0.1/32 -j DROP", counters: "[0:0]")
            ]
        let input = try #require(UserChainOwnership.restoreInput(parsed, live: applied, chain: "DOCKER-USER"))
        #expect(
            input == """
                *filter
                :DOCKER-USER - [0:0]
                [7:420] -A DOCKER-USER -j RETURN
                -D FORWARD -j DOCKER-USER
                -I FORWARD 3 -j DOCKER-USER
                COMMIT

                """)
        // A chain that did not exist is removed again, with its jump.
        let absent = UserChainState(exists: false, rules: [], jumps: [])
        let removal = try #require(UserChainOwnership.restoreInput(absent, live: applied, chain: "DOCKER-USER"))
        #expect(removal == "*filter\n-D FORWARD -j DOCKER-USER\n-F DOCKER-USER\n-X DOCKER-USER\nCOMMIT\n")
    }

    // MARK: audit

    /// Drift only in DOCKER-USER, risks of the whole host: the web-stack policy against a
    /// Docker host that runs something else entirely.
    @Test func auditAlongsideComparesOnlyTheOwnedChain() throws {
        let capture = HostCapture.file(Repo.fixtures + "/docker-20.10/s02-one-publish.rules", format: nil)
        let policy = Repo.policies + "/web-stack.policy"
        let result = inProcess {
            try $0.runAudit(AuditRequest(policy: policy, capture: capture, alongsideDocker: true), format: .text)
        }
        #expect(result.status == 1)
        let headings = result.stdout.split(separator: "\n").filter { !$0.hasPrefix(" ") && $0.contains(": ") }
        let drift = headings.filter { $0.contains("missing-rule") || $0.contains("changed-rule") }
        #expect(drift.count == 3, "\(result.stdout)")
        #expect(drift.allSatisfy { $0.contains("in filter/DOCKER-USER") }, "\(result.stdout)")
        #expect(headings.contains { $0.hasPrefix("medium: published-to-everyone in nat/DOCKER") }, "\(result.stdout)")
        // Without the flag, Docker's chains drift too.
        let whole = inProcess { try $0.runAudit(AuditRequest(policy: policy, capture: capture), format: .text) }
        #expect(whole.stdout.contains("in filter/DOCKER ("))
    }
}
