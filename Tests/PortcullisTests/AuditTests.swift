import Foundation
import JanssonKit
import Testing

/// `portcullis audit` on real captures, compiled rulesets and damaged input.
@Suite struct AuditTests {
    func audit(_ arguments: [String], input: String? = nil) -> CommandResult {
        run([CommandLineTests.binary, "audit"] + arguments, input: input)
    }

    func ids(_ result: CommandResult) throws -> [String] {
        let document = try JSON.parse(result.stdout)
        #expect(document["schema"]?.stringValue == "portcullis-audit/1")
        return try #require(document["findings"]?.arrayValue).compactMap { $0["id"]?.stringValue }
    }

    @Test func realDockerHostRisks() throws {
        let result = audit(["--ruleset", Repo.fixtures + "/docker-20.10/s03-hostip-udp.rules", "--format", "json"])
        #expect(result.status == 1)
        #expect(try ids(result) == ["loopback-publish-reachable", "published-to-everyone", "icc-open"])
    }

    @Test func docker15SeedLeavesForwardOpen() throws {
        let seed = run([CommandLineTests.binary, "compile", Repo.policies + "/seed.policy", "--layout", "docker-1.5"])
            .stdout
        let result = audit(["--ruleset", "-", "--format", "json"], input: seed)
        #expect(try ids(result) == ["docker-user-missing", "forward-policy-accept", "icc-open"])
    }

    @Test func docker28GuardsLoopbackPublishes() throws {
        let policy = Repo.fixtures + "/docker-28/s54-usernet-portmap-lo.policy"
        let compiled = run([CommandLineTests.binary, "compile", policy, "--layout", "docker-28"]).stdout
        #expect(!compiled.isEmpty)
        #expect(
            try !ids(audit(["--ruleset", "-", "--format", "json"], input: compiled)).contains(
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
        let found = try ids(audit(["--ruleset", "-", "--format", "json"], input: lines.joined(separator: "\n") + "\n"))
        #expect(found.contains("docker-user-not-first"))
        #expect(found.filter { $0 == "dnat-to-unknown-address" }.count == 2)
        #expect(found.contains("duplicate-rule"))
    }

    @Test func policyMatchingTheHostHasNoDrift() {
        let compiled = run([CommandLineTests.binary, "compile", Repo.policies + "/web-stack.policy"]).stdout
        let result = audit([Repo.policies + "/web-stack.policy", "--ruleset", "-"], input: compiled)
        #expect(result.status == 0 && result.stdout == "-: no findings\n")
    }

    @Test func driftIsReportedWithThePolicyLine() throws {
        let compiled = run([CommandLineTests.binary, "compile", Repo.policies + "/web-stack.policy"]).stdout
            .replacingOccurrences(of: "--dport 8000 ", with: "--dport 8001 ")
        let result = audit(
            [Repo.policies + "/web-stack.policy", "--ruleset", "-", "--format", "json"], input: compiled)
        #expect(result.status == 1)
        let findings = try #require(try JSON.parse(result.stdout)["findings"]?.arrayValue)
        let missing = try #require(findings.first { $0["id"]?.stringValue == "missing-rule" })
        #expect(missing["location"]?.stringValue?.hasSuffix("web-stack.policy:40") == true)
        #expect(findings.contains { $0["id"]?.stringValue == "unexpected-rule" })
    }

    @Test func nftJSONRulesetsAreAuditedToo() throws {
        let json = Repo.read(Repo.golden + "/source-restricted/docker-20.10.nft.json")
        let found = try ids(audit(["--ruleset", "-", "--format", "json"], input: json))
        #expect(found.contains("published-to-everyone") && found.contains("icc-open"))
        #expect(!found.contains("forward-policy-accept"))
    }

    @Test func truncatedRulesetIsAnErrorNotACleanAudit() {
        let text = Repo.read(Repo.golden + "/web-stack/docker-20.10.iptables")
        let result = audit(["--ruleset", "-"], input: String(text.prefix(text.count / 2)))
        #expect(result.status == 2)
        #expect(result.stderr.contains("error:") && result.stdout.isEmpty)
    }
}
