import Foundation
import JanssonKit
import PortcullisAudit
import PortcullisCompiler
import PortcullisIR
import PortcullisNet
import PortcullisReaders
import PortcullisRender
import Testing

/// `portcullis audit` on real captures, compiled rulesets and damaged input.
@Suite struct AuditTests {
    /// `audit` in-process: of the rules in `ruleset` ('-': `input`), against `policy` if given.
    func audit(
        policy: String? = nil, layout: String? = nil, ruleset: String = "-", from: RulesetFormat? = nil,
        format: ReportFormat = .text, input: String? = nil
    ) -> CommandResult {
        let capture: HostCapture =
            input.map { .text($0, source: ruleset, format: from) } ?? .file(ruleset, format: from)
        let request = AuditRequest(policy: policy, capture: capture, layout: layout)
        return inProcess { try $0.runAudit(request, format: format) }
    }

    func ids(_ result: CommandResult) throws -> [String] {
        let document = try JSON.parse(result.stdout)
        #expect(document["schema"]?.stringValue == "portcullis-audit/1")
        return try #require(document["findings"]?.arrayValue).compactMap { $0["id"]?.stringValue }
    }

    @Test func realDockerHostRisks() throws {
        let result = audit(ruleset: Repo.fixtures + "/docker-20.10/s03-hostip-udp.rules", format: .json)
        #expect(result.status == 1)
        #expect(try ids(result) == ["loopback-publish-reachable", "published-to-everyone", "icc-open"])
    }

    @Test func docker15SeedLeavesForwardOpen() throws {
        let seed = compiledRuleset(Repo.policies + "/seed.policy", layout: "docker-1.5")
            .stdout
        let result = audit(format: .json, input: seed)
        #expect(try ids(result) == ["docker-user-missing", "forward-policy-accept", "icc-open"])
    }

    @Test func docker28GuardsLoopbackPublishes() throws {
        let policy = Repo.fixtures + "/docker-28/s54-usernet-portmap-lo.policy"
        let compiled = compiledRuleset(policy, layout: "docker-28").stdout
        #expect(!compiled.isEmpty)
        #expect(
            try !ids(audit(format: .json, input: compiled)).contains(
                "loopback-publish-reachable"))
    }

    @Test func leftoversAreFound() throws {
        var lines = Repo.read(Repo.fixtures + "/docker-20.10/s02-one-publish.rules").components(
            separatedBy: "#### ip6tables")[0]
            .split(separator: "\n").map(String.init)
        // A duplicated DNAT to a container that is gone, and DOCKER-USER moved down.
        let dnat = "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 172.30.0.9:90"
        lines.insert(contentsOf: [dnat, dnat], at: lines.lastIndex(of: "COMMIT")!)
        let first = lines.firstIndex(of: "-A FORWARD -j DOCKER-USER")!
        lines.swapAt(first, first + 1)
        let found = try ids(audit(format: .json, input: lines.joined(separator: "\n") + "\n"))
        #expect(found.contains("docker-user-not-first"))
        #expect(found.filter { $0 == "dnat-to-unknown-address" }.count == 2)
        #expect(found.contains("duplicate-rule"))
    }

    @Test func policyMatchingTheHostHasNoDrift() {
        let compiled = compiledRuleset(Repo.policies + "/web-stack.policy").stdout
        let result = audit(policy: Repo.policies + "/web-stack.policy", input: compiled)
        #expect(result.status == 0 && result.stdout == "-: no findings\n")
    }

    @Test func driftIsReportedWithThePolicyLine() throws {
        let compiled = compiledRuleset(Repo.policies + "/web-stack.policy").stdout
            .replacingOccurrences(of: "--dport 8000 ", with: "--dport 8001 ")
        let result = audit(policy: Repo.policies + "/web-stack.policy", format: .json, input: compiled)
        #expect(result.status == 1)
        let findings = try #require(try JSON.parse(result.stdout)["findings"]?.arrayValue)
        // A rule edited in place is one changed rule, with the host's line and the policy's.
        #expect(findings.count == 1)
        let changed = try #require(findings.first { $0["id"]?.stringValue == "changed-rule" })
        #expect(changed["table"]?.stringValue == "filter" && changed["chain"]?.stringValue == "DOCKER-USER")
        #expect(changed["rule"]?.stringValue?.contains("--dport 8001") == true)
        #expect(changed["location"]?.stringValue == "-:34")
        #expect(changed["policy_rule"]?.stringValue?.contains("--dport 8000") == true)
        #expect(changed["policy_location"]?.stringValue?.hasSuffix("web-stack.policy:40") == true)
    }

    @Test func missingRuleNamesItsPolicyLine() throws {
        let compiled =
            compiledRuleset(Repo.policies + "/web-stack.policy").stdout
            .split(separator: "\n").filter { !$0.contains("--dport 8000 ") }.joined(separator: "\n") + "\n"
        let result = audit(policy: Repo.policies + "/web-stack.policy", format: .json, input: compiled)
        let findings = try #require(try JSON.parse(result.stdout)["findings"]?.arrayValue)
        #expect(findings.map { $0["id"]?.stringValue } == ["missing-rule"])
        #expect(findings.first?["location"]?.stringValue?.hasSuffix("web-stack.policy:40") == true)
    }

    /// Drift over nftables: the policy is compiled for nftables and compared with an
    /// `nft -j list ruleset` document, on meaning (counters and handles do not count).
    @Test func nftJSONDriftIsFoundOnMeaning() throws {
        let policy = Repo.policies + "/web-stack.policy"
        let golden = Repo.read(Repo.golden + "/web-stack/docker-20.10.nft.json")
        let clean = audit(policy: policy, input: golden)
        #expect(clean.status == 0 && clean.stdout == "-: no findings\n", "\(clean.stdout)")
        // The same ruleset as a live listing prints it: handles and counters everywhere.
        let listed = golden.replacingOccurrences(
            of: "\"expr\": [", with: "\"handle\": 7, \"expr\": [{\"counter\": {\"packets\": 3, \"bytes\": 180}}, ")
        #expect(audit(policy: policy, input: listed).status == 0)
        let edited = golden.replacingOccurrences(of: "\"right\": 8000", with: "\"right\": 8001")
        let result = audit(policy: policy, format: .json, input: edited)
        #expect(result.status == 1)
        let findings = try #require(try JSON.parse(result.stdout)["findings"]?.arrayValue)
        #expect(findings.map { $0["id"]?.stringValue } == ["changed-rule"])
        #expect(findings.first?["family"]?.stringValue == "ip")
        #expect(findings.first?["rule"]?.stringValue?.contains("tcp dport 8001 accept") == true)
        #expect(findings.first?["policy_location"]?.stringValue?.hasSuffix("web-stack.policy:40") == true)
        #expect(findings.first?["location"]?.stringValue?.hasPrefix("- rule at $.nftables[") == true)
    }

    /// Every nft JSON golden (the iptables-era layouts as nft, Docker 29's own nftables
    /// tables with verdict maps, the native layout's sets and maps) is what its policy means.
    static var nftGoldens: [(String, String)] {
        ReaderTests.jsonGoldens.map { golden in
            let parts = golden.split(separator: "/")
            return (String(parts[0]), String(parts[1].dropLast(".nft.json".count)))
        }
    }

    @Test(arguments: nftGoldens)
    func nftGoldensHaveNoDrift(_ policy: String, _ layout: String) {
        let result = audit(
            policy: Repo.policies + "/\(policy).policy", layout: layout,
            ruleset: Repo.golden + "/\(policy)/\(layout).nft.json")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    /// Sets and maps drift element by element, traced to the policy line behind the element.
    @Test func setElementsDrift() throws {
        let golden = Repo.read(Repo.golden + "/web-stack/native.nft.json")
        let edited = golden.replacingOccurrences(
            of: "\"tcp\",\n              8000\n", with: "\"tcp\",\n              8001\n")
        #expect(edited != golden)
        let result = audit(policy: Repo.policies + "/web-stack.policy", layout: "native", format: .json, input: edited)
        #expect(result.status == 1)
        let findings = try #require(try JSON.parse(result.stdout)["findings"]?.arrayValue)
        let missing = try #require(findings.first { $0["id"]?.stringValue == "missing-element" })
        #expect(missing["subject"]?.stringValue == "198.18.1.10 . 198.18.2.10 . tcp . 8000")
        #expect(missing["table"]?.stringValue == "portcullis" && missing["family"]?.stringValue == "inet")
        #expect(findings.contains { $0["id"]?.stringValue == "unexpected-element" })
    }

    @Test func fromSaysTheFormat() {
        let json = Repo.read(Repo.golden + "/web-stack/docker-20.10.nft.json")
        let wrong = audit(from: .iptablesSave, input: json)
        #expect(wrong.status == 2 && wrong.stderr.contains("error: -: line 1:"))
        #expect(audit(from: .nftJSON, input: json).status == 1)
        // An unknown format is refused by the command line's argument parsing.
        #expect(run([CommandLineTests.binary, "audit", "--ruleset", "-", "--from", "yaml"], input: json).status == 2)
    }

    @Test func tablesOfOtherFamiliesAreNeverPassedOver() throws {
        let text = Repo.read(Repo.fixtures + "/nft/iptables-nft-docker-and-sets.json")
        let result = audit(format: .json, input: text)
        #expect(try ids(result).contains("table-not-read"))
        #expect(result.stderr.contains("warning: -: $.nftables[") && result.stderr.contains("xt target TCPMSS"))
    }

    /// A small Docker-style host with no risk at all, and one change per risk.
    static let cleanHost = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :DOCKER - [0:0]
        :DOCKER-USER - [0:0]
        -A FORWARD -j DOCKER-USER
        -A FORWARD -o docker0 -j DOCKER
        -A FORWARD -i docker0 -o docker0 -j DROP
        -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
        -A DOCKER-USER -j RETURN
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :DOCKER - [0:0]
        -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
        -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
        -A DOCKER -d 198.18.0.1/32 ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
        COMMIT

        """

    @Test(arguments: [
        ("forward-policy-accept", ":FORWARD DROP [0:0]", ":FORWARD ACCEPT [0:0]"),
        ("docker-user-missing", "DOCKER-USER", "DOCKER-USR"),
        (
            "docker-user-not-first", "-A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER\n",
            "-A FORWARD -o docker0 -j DOCKER\n-A FORWARD -j DOCKER-USER\n"
        ),
        ("loopback-publish-reachable", "-d 198.18.0.1/32 ! -i docker0", "-d 127.0.0.1/32 ! -i docker0"),
        ("published-to-everyone", "-A DOCKER -d 198.18.0.1/32 ! -i docker0", "-A DOCKER ! -i docker0"),
        ("dnat-to-unknown-address", "--to-destination 172.17.0.2:80", "--to-destination 172.30.0.2:80"),
        (
            "duplicate-rule", "-A DOCKER-USER -j RETURN\n",
            "-A DOCKER-USER -s 198.18.9.9/32 -j DROP\n-A DOCKER-USER -s 198.18.9.9/32 -j DROP\n-A DOCKER-USER -j RETURN\n"
        ),
        ("icc-open", "-i docker0 -o docker0 -j DROP", "-i docker0 -o docker0 -j ACCEPT"),
        (
            "shadowed-rule", "-A DOCKER-USER -j RETURN\n",
            "-A DOCKER-USER -j RETURN\n-A DOCKER-USER -s 198.18.9.9/32 -j DROP\n"
        ),
    ])
    func eachRiskIsFoundAlone(_ id: String, _ from: String, _ to: String) throws {
        let clean = audit(format: .json, input: Self.cleanHost)
        #expect(clean.status == 0)
        #expect(try ids(clean).isEmpty)
        let crafted = Self.cleanHost.replacingOccurrences(of: from, with: to)
        #expect(crafted != Self.cleanHost)
        let result = audit(format: .json, input: crafted)
        #expect(result.status == 1)
        #expect(try ids(result) == [id])
    }

    @Test func nftJSONRulesetsAreAuditedToo() throws {
        let json = Repo.read(Repo.golden + "/source-restricted/docker-20.10.nft.json")
        let found = try ids(audit(format: .json, input: json))
        #expect(found.contains("published-to-everyone") && found.contains("icc-open"))
        #expect(!found.contains("forward-policy-accept"))
    }

    @Test func truncatedRulesetIsAnErrorNotACleanAudit() {
        let text = Repo.read(Repo.golden + "/web-stack/docker-20.10.iptables")
        let result = audit(input: String(text.prefix(text.count / 2)))
        #expect(result.status == 2)
        #expect(result.stderr.contains("error:") && result.stdout.isEmpty)
    }
}

/// Risks on Docker 29's own nftables tables: a crafted host with none, then one change per risk.
@Suite struct DockerBridgesRiskTests {
    static let clean = """
        network bridge {
            bridge docker0
            subnet 172.17.0.0/16
            icc deny
        }
        network bridge1 {
            bridge bridge1
            subnet 192.0.2.0/24
            icc deny
        }
        container c1 {
            attach bridge1 192.0.2.2
            publish 127.0.0.1:8080 -> 80/tcp
            publish 198.18.0.1:8443 -> 443/tcp
        }

        """

    static func host() throws -> Ruleset {
        let json = try compileInline(clean, layout: "docker-29", backend: .nftablesJSON).get()
        return try NftJSONReader(source: "crafted").read(json).ruleset
    }

    static func ids(_ ruleset: Ruleset) -> [String] { RiskAudit(ruleset: ruleset).findings().map(\.id.rawValue) }

    /// Changes the rules of one chain of `ip docker-bridges`.
    static func edit(_ ruleset: Ruleset, _ chain: String, _ change: (inout [Rule]) -> Void) -> Ruleset {
        var ruleset = ruleset
        let table = ruleset.tables.firstIndex { $0.family == .ip && $0.name == "docker-bridges" }!
        change(&ruleset.tables[table][chain: chain].rules)
        return ruleset
    }

    @Test func cleanHostHasNoRisk() throws {
        #expect(Self.ids(try Self.host()) == [])
    }

    @Test func publishedToEveryone() throws {
        let ruleset = Self.edit(try Self.host(), "nat-prerouting-and-output") { rules in
            for i in rules.indices {
                rules[i].matches.removeAll {
                    $0 == .address(.destination, IPPrefix(host: IPAddress("198.18.0.1")!))
                }
            }
        }
        let findings = RiskAudit(ruleset: ruleset).findings()
        #expect(findings.map(\.id) == [.publishedToEveryone])
        #expect(findings.first?.family == .ip && findings.first?.chain == "nat-prerouting-and-output")
        #expect(findings.first?.rule?.provenance?.statement.hasPrefix("rule at $.nftables[") == true)
    }

    @Test func loopbackPublishWithoutTheRemoteLoopbackDrop() throws {
        let ruleset = Self.edit(try Self.host(), "raw-PREROUTING") { rules in
            rules.removeAll { $0.comment?.text == "DROP REMOTE LOOPBACK" }
        }
        #expect(Self.ids(ruleset) == ["loopback-publish-reachable"])
    }

    @Test func iccOpen() throws {
        let ruleset = Self.edit(try Self.host(), "filter-forward-in__bridge1") { rules in
            for i in rules.indices where rules[i].comment?.text == "ICC" { rules[i].action = .accept }
        }
        #expect(Self.ids(ruleset) == ["icc-open"])
    }

    @Test func dnatToAnAddressNoBridgeHolds() throws {
        let ruleset = Self.edit(try Self.host(), "nat-prerouting-and-output") { rules in
            rules[0].action = .dnat(IPAddress("172.30.0.9")!, PortRange(80))
        }
        #expect(Self.ids(ruleset) == ["dnat-to-unknown-address"])
    }

    @Test func duplicatedAndShadowedRules() throws {
        let duplicated = Self.edit(try Self.host(), "nat-prerouting-and-output") { rules in
            rules.append(rules[0])
        }
        #expect(Self.ids(duplicated) == ["duplicate-rule"])
        let shadowed = Self.edit(try Self.host(), "filter-forward-out__bridge1") { rules in
            rules.append(Rule([.address(.destination, IPPrefix(host: IPAddress("198.18.9.9")!))], .drop))
        }
        #expect(Self.ids(shadowed) == ["shadowed-rule"])
    }

    /// The audit reads Docker's tables as nft JSON and reports their risks with the table's family.
    @Test func auditCommandReportsThem() throws {
        let json = try compileInline(
            Self.clean.replacingOccurrences(of: "publish 198.18.0.1:8443", with: "publish 8443"), layout: "docker-29",
            backend: .nftablesJSON
        ).get()
        let request = AuditRequest(capture: .text(json, source: "-", format: nil))
        let result = inProcess { try $0.runAudit(request, format: .json) }
        #expect(result.status == 1)
        let findings = try #require(try JSON.parse(result.stdout)["findings"]?.arrayValue)
        #expect(findings.map { $0["id"]?.stringValue } == ["published-to-everyone"])
        #expect(
            findings.first?["family"]?.stringValue == "ip" && findings.first?["table"]?.stringValue == "docker-bridges")
        #expect(findings.first?["rule"]?.stringValue?.contains("tcp dport 8443") == true)
    }
}
