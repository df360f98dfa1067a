import Foundation
import JanssonKit
import PortcullisCompiler
import Testing

/// `portcullis import`: a host Docker managed becomes a policy that compiles back to the same
/// rules, for every real capture and verbatim dump of every era; user rules become allow, deny
/// and egress statements (checked on meaning with `audit`); what rules cannot tell is reported.
@Suite struct ImportTests {
    static let directory = Repo.fixtures + "/docker-20.10"
    /// s09: networks that neither masquerade nor are internal leave their subnet out of the
    /// rules; s16: Docker's own order varies between runs.
    static let captures = DockerCaptureTests.scenarios.filter { $0 != "s09-masq-off" }

    func scratch() -> String {
        NSTemporaryDirectory() + "portcullis-import-\(getpid())-\(UUID().uuidString.prefix(6)).policy"
    }

    func importAndCompile(_ rules: String, _ extra: [String] = [], backend: String = "iptables") throws -> (
        policy: String, compiled: String, stderr: String
    ) {
        let path = scratch()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let imported = run([CommandLineTests.binary, "import", rules, "-o", path] + extra)
        try #require(imported.status == 0, "\(imported.stderr)")
        let compiled = run([CommandLineTests.binary, "compile", path, "--backend", backend])
        try #require(compiled.status == 0, "\(compiled.stderr)")
        return (Repo.read(path), compiled.stdout, imported.stderr)
    }

    /// Imports `rules` and audits the imported policy against them: no drift in meaning.
    func importAndAudit(_ rules: String, input: String? = nil, from: String = "iptables-save") throws -> (
        policy: String, audit: CommandResult
    ) {
        let path = scratch()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let imported = run([CommandLineTests.binary, "import", "--from", from, rules, "-o", path], input: input)
        try #require(imported.status == 0, "\(imported.stderr)")
        let audit = run([CommandLineTests.binary, "audit", path, "--ruleset", rules, "--format", "json"], input: input)
        return (Repo.read(path), audit)
    }

    @Test(arguments: captures)
    func importedPolicyCompilesBackToTheCapture(_ scenario: String) throws {
        let (policy, compiled, stderr) = try importAndCompile("\(Self.directory)/\(scenario).rules")
        let expected = DockerCaptureTests.captured(scenario)
        #expect(stderr.hasPrefix("detected layout docker-20.10\n"))
        if DockerCaptureTests.unorderedScenarios.contains(scenario) {
            #expect(compiled.split(separator: "\n").sorted() == expected.split(separator: "\n").sorted())
        } else {
            #expect(compiled == expected, "\(policy)")
        }
    }

    static let verbatim = ModernLayoutTests.all.flatMap { fixtures in fixtures.scenarios.map { (fixtures, $0) } }

    /// Docker 28 and 29's verbatim dumps: detected, imported, and compiled back to every table
    /// the source prints. Dumps that leave out the table holding the subnets (nat) report the
    /// networks instead; a dump without filter needs --layout.
    @Test(arguments: verbatim)
    func modernDumpsCompileBack(_ fixtures: VerbatimFixtures, _ scenario: String) throws {
        let rules = "\(fixtures.directory)/\(scenario).rules"
        let expected = VerbatimFixtures.tables(Repo.read(rules))
        let extra = expected["filter"] == nil ? ["--layout", fixtures.layout] : []
        let (policy, compiled, stderr) = try importAndCompile(rules, extra)
        #expect(
            stderr.hasPrefix(
                extra.isEmpty ? "detected layout \(fixtures.layout)\n" : "layout \(fixtures.layout) (given)\n"))
        guard expected["nat"] != nil else {
            #expect(stderr.contains("its subnet is not in the rules"))
            return
        }
        let actual = VerbatimFixtures.tables(compiled)
        for (name, text) in expected {
            #expect(actual[name] == text, "\(name) of \(scenario):\n\(policy)")
        }
    }

    /// Docker 28 and 29's gateway modes (routed, nat-unprotected; VERBATIM dumps 5.8 and 6.7):
    /// the mode is read from the rules (the ICMP accept, the bridge's accepting DOCKER rule) and
    /// the policy compiles back to every table the dump prints. A routed network's subnet is in
    /// no rule: the one assumed is said, and changes no rule.
    @Test(arguments: GatewayModeTests.scenarios)
    func gatewayModeDumpsCompileBack(_ scenario: GatewayModeTests.Scenario) throws {
        let rules = scenario.path + ".rules"
        let (policy, compiled, stderr) = try importAndCompile(rules)
        #expect(stderr.hasPrefix("detected layout \(scenario.layout)\n"))
        let mode = scenario.name.hasSuffix("-routed") ? "routed" : "nat-unprotected"
        #expect(policy.contains("    gateway-mode \(mode)\n"), "\(policy)")
        #expect(!policy.contains("# not imported:"), "\(policy)")
        #expect(stderr.contains("assumed: network on bridge bridge1: a routed network's subnet") == (mode == "routed"))
        let expected = VerbatimFixtures.tables(Repo.read(rules))
        let actual = VerbatimFixtures.tables(compiled)
        for (name, text) in expected {
            #expect(actual[name] == text, "\(name) of \(scenario.name):\n\(policy)")
        }
    }

    /// moby's unit goldens of dual-stack networks (5.9, 6.9) and nat-unprotected (6.9): the
    /// ip6tables part is imported with the IPv4 one (after a '#### ip6tables' line, as
    /// iptables-save and ip6tables-save print a host), IPv6 addresses join the container of the
    /// same bridge and publishes, and both families compile back table by table. The unit
    /// tests write no DOCKER-USER (ModernUnitGoldenTests says why); 5.9 has no IPv4 golden, so
    /// its IPv4 part is what the fixture's policy compiles to (checked against Docker by the
    /// layout's own tests).
    @Test(arguments: ModernUnitGoldenTests.fixtures)
    func unitGoldensImportWithTheirIPv6Part(_ fixture: ModernUnitGoldenTests.Fixture) throws {
        let base = "\(fixture.directory)/\(fixture.scenario)"
        let exists = { (ext: String) in FileManager.default.fileExists(atPath: "\(base).\(ext)") }
        var ipv4 = exists("iptables") ? Repo.read(base + ".iptables") : ""
        if ipv4.isEmpty {
            let files = try Compiler().compile(base + ".policy", layout: fixture.layout, backend: "iptables").get()
            ipv4 = try #require(files.first { $0.fileExtension == "iptables" }).text
        }
        var host = ipv4
        if exists("ip6tables") { host += "#### ip6tables\n" + Repo.read(base + ".ip6tables") }
        let path = scratchWrite(host)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (policy, compiled, stderr) = try importAndCompile(path)
        #expect(stderr.hasPrefix("detected layout \(fixture.layout)\n"))
        #expect(!policy.contains("# not imported:"), "\(policy)")
        let parts = compiled.components(separatedBy: "#### ip6tables\n")
        let hostParts = host.components(separatedBy: "#### ip6tables\n")
        #expect(parts.count == hostParts.count, "\(policy)")
        for (index, (ours, theirs)) in zip(parts, hostParts).enumerated() {
            let actual = VerbatimFixtures.tables(ModernUnitGoldenTests.withoutUserChain(ours))
            let expected = VerbatimFixtures.tables(ModernUnitGoldenTests.withoutUserChain(theirs))
            for (name, text) in expected {
                if actual[name] == nil && !text.contains("\n-A ") { continue }
                #expect(actual[name] == text, "\(index == 0 ? "iptables" : "ip6tables") \(name):\n\(policy)")
            }
        }
        if exists("ip6tables") && policy.contains("container ") {
            #expect(policy.contains("    attach net-br-dummy fd49:efd7:54aa::1\n"), "\(policy)")
        }
    }

    /// A host with dual-stack containers and a flow between them in both families' DOCKER-USER:
    /// one statement, and the imported policy compiles back to the same IPv4 and IPv6 rules.
    @Test func dualStackFlowIsOneStatement() throws {
        let policy = """
            host {
                layout docker-28
            }
            network v6 {
                bridge br-v6
                subnet 198.18.6.0/24
                subnet fd00:6::/64
                icc deny
            }
            container web {
                attach v6 198.18.6.2
                attach v6 fd00:6::2
                publish 8080 -> 80/tcp
                publish [::1]:9001 -> 9001/tcp
            }
            container client {
                attach v6 198.18.6.3
                attach v6 fd00:6::3
            }
            allow client -> web port 80/tcp

            """
        let source = scratchWrite(policy)
        defer { try? FileManager.default.removeItem(atPath: source) }
        let host = run([CommandLineTests.binary, "compile", source]).stdout
        #expect(host.contains("#### ip6tables\n"))
        let path = scratchWrite(host)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (imported, compiled, _) = try importAndCompile(path)
        #expect(imported.contains("allow c-198-18-6-3 -> c-198-18-6-2 port 80/tcp\n"), "\(imported)")
        #expect(imported.components(separatedBy: "allow ").count == 2)
        #expect(imported.contains("    publish [::1]:9001 -> 9001/tcp\n"))
        #expect(!imported.contains("# not imported:"))
        // The same rules in both families; only the comments name the statement differently.
        func uncommented(_ text: String) -> String {
            text.replacing(#/ -m comment --comment "[^"]*"/#, with: "")
        }
        #expect(uncommented(compiled) == uncommented(host), "\(imported)")
        let (_, audit) = try importAndAudit(path)
        #expect(audit.status == 0, "\(audit.stdout)")
    }

    /// Every golden iptables file of every Docker layout (hosts with user rules among them):
    /// the imported policy means what the file means, and is the same text when the file has
    /// no user rules and nothing was left out.
    static var goldens: [String] {
        let manager = FileManager.default
        return ((try? manager.contentsOfDirectory(atPath: Repo.golden)) ?? []).sorted().flatMap { folder in
            ((try? manager.contentsOfDirectory(atPath: Repo.golden + "/" + folder)) ?? []).sorted()
                .filter { $0.hasSuffix(".iptables") }.map { folder + "/" + $0 }
        }
    }

    /// A golden with an `.ip6tables` file beside it is a host whose ip6tables-save output follows
    /// its iptables-save output after a '#### ip6tables' line (as `compile` prints both).
    @Test(arguments: goldens)
    func goldenHostsImportOnMeaning(_ golden: String) throws {
        var path = Repo.golden + "/" + golden
        let ip6 = path.replacingOccurrences(of: ".iptables", with: ".ip6tables")
        // (docker-20.10's ip6tables rules, behind its `ip6tables` host setting, are not imported yet.)
        if FileManager.default.fileExists(atPath: ip6) && !golden.hasSuffix("/docker-20.10.iptables") {
            path = scratchWrite(Repo.read(path) + "#### ip6tables\n" + Repo.read(ip6))
        }
        defer { if !path.hasPrefix(Repo.golden) { try? FileManager.default.removeItem(atPath: path) } }
        let (policy, audit) = try importAndAudit(path)
        let reported = policy.contains("# not imported:")
        if !reported {
            #expect(audit.status == 0, "\(golden): \(audit.stdout)\n\(policy)")
        } else {
            // What could not be imported is exactly what the audit finds missing from the policy.
            #expect(audit.status == 1)
        }
        if !reported && !policy.contains("# From the rules in") {
            let compiled = run([CommandLineTests.binary, "compile", scratchWrite(policy)]).stdout
            #expect(compiled == Repo.read(path), "\(golden)")
        }
    }

    func scratchWrite(_ text: String) -> String {
        let path = scratch()
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A real Docker 20.10 host where someone added rules to DOCKER-USER by hand: flows between
    /// containers and an egress restriction become statements; a rule the language cannot say
    /// is listed, and is the only thing an audit of the imported policy then finds.
    @Test func handWrittenUserRulesBecomeStatements() throws {
        var lines = DockerCaptureTests.captured("s10-multi-network").split(separator: "\n").map(String.init)
        let user = try #require(lines.firstIndex(of: "-A DOCKER-USER -j RETURN"))
        lines.insert(
            contentsOf: [
                "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A DOCKER-USER -s 198.18.2.20/32 -d 198.18.2.30/32 -i br-back -o br-back -p tcp -m tcp --dport 5432 -j ACCEPT",
                "-A DOCKER-USER -s 198.18.1.0/24 -d 198.18.2.30/32 -i br-front -o br-back -j DROP",
                "-A DOCKER-USER -s 198.18.2.20/32 -i br-back -o eth0 -p udp -m udp --dport 53 -j ACCEPT",
                "-A DOCKER-USER -s 198.18.2.20/32 -i br-back ! -o br-back -j DROP",
                "-A DOCKER-USER -m physdev --physdev-in veth9 -j DROP",
            ], at: user)
        let host = lines.joined(separator: "\n") + "\n"
        let rulesPath = scratchWrite(host)
        defer { try? FileManager.default.removeItem(atPath: rulesPath) }
        let imported = run([CommandLineTests.binary, "import", rulesPath])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout.contains("    external eth0\n"))
        #expect(imported.stdout.contains("allow c-198-18-2-20 -> c-198-18-2-30 port 5432/tcp\n"), "\(imported.stdout)")
        #expect(imported.stdout.contains("deny net-br-front -> c-198-18-2-30\n"))
        #expect(imported.stdout.contains("egress c-198-18-2-20 -> any port 53/udp\n"))
        // A container that left no rule of Docker's is known from the flows.
        #expect(imported.stdout.contains("container c-198-18-2-30 {\n    attach net-br-back 198.18.2.30\n}"))
        #expect(imported.stderr.contains("not imported: 1 rule(s) in DOCKER-USER the policy language cannot say"))
        #expect(imported.stderr.contains("  -A DOCKER-USER -m physdev --physdev-in veth9 -j DROP\n"))
        let (_, audit) = try importAndAudit(rulesPath)
        let findings = try #require(try JSONSummary.findings(audit.stdout))
        #expect(findings == ["unexpected-rule filter/DOCKER-USER -A DOCKER-USER -m physdev --physdev-in veth9 -j DROP"])
    }

    /// nft JSON of the same tables imports like iptables-save text.
    @Test(arguments: ["internal-db", "publish-all", "seed", "web-stack"])
    func nftJSONImports(_ policy: String) throws {
        let json = Repo.golden + "/\(policy)/docker-20.10.nft.json"
        let (imported, compiled, stderr) = try importAndCompile(json, ["--from", "nft-json"], backend: "nftables-json")
        #expect(stderr.hasPrefix("detected layout docker-20.10\n"))
        if imported.contains("# From the rules in") {
            let audit = run([CommandLineTests.binary, "audit", scratchWrite(imported), "--ruleset", json])
            #expect(audit.status == 0, "\(audit.stdout)")
        } else {
            #expect(compiled == Repo.read(json))
        }
    }

    /// Docker 29's own nftables tables (every VERBATIM dump of Fixtures/docker-29-nftables, as
    /// nft JSON): detected as docker-29 on nftables, imported, and compiled back byte for byte.
    /// Internal networks are the exception: Docker's nftables firewaller writes their subnet
    /// in no rule, which the import reports.
    @Test(arguments: Docker29NftablesTests.scenarios)
    func dockerNftablesDumpsCompileBack(_ scenario: String) throws {
        let json = try Docker29NftablesTests.compile(scenario, backend: "nftables-json")
        let path = scratchWrite(json)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (policy, compiled, stderr) = try importAndCompile(path, ["--from", "nft-json"], backend: "nftables-json")
        #expect(stderr.hasPrefix("detected layout docker-29\n"))
        #expect(policy.contains("    layout docker-29\n    backend nftables\n"))
        if scenario.hasSuffix("-internal") {
            #expect(stderr.contains("not imported: network on bridge bridgeICC: its subnet is not in the rules"))
        } else {
            #expect(!policy.contains("# not imported:"), "\(policy)")
            #expect(compiled == json, "\(policy)")
        }
    }

    /// The same from a live listing: the dump loaded in a fresh namespace and listed with
    /// `nft -j list ruleset` (handles, counters, metainfo) imports to the same policy.
    @Test(.enabled(if: Kernel.enabled, Kernel.reason))
    func listedDockerNftablesTablesImport() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let scenario = "s72-usernet-portmap"
        let namespace = try TestNamespace()
        let (applied, _) = try namespace.nftApplyAndList(Docker29NftablesTests.expected(scenario))
        try #require(applied.succeeded, "\(applied.error)")
        let listing = namespace.exec(["nft", "-j", "list", "ruleset"]).stdout
        let path = scratchWrite(listing)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (_, compiled, _) = try importAndCompile(path, ["--from", "nft-json"], backend: "nftables")
        #expect(compiled == Docker29NftablesTests.expected(scenario))
    }

    /// Every docker-29.nft.json golden (Docker 29's nftables tables with portcullis-user beside
    /// them): imported, it means what the golden means (an audit finds nothing), and is the same
    /// text when no user rule or left-out part is involved.
    static var dockerNftablesGoldens: [String] {
        ReaderTests.jsonGoldens.filter { $0.hasSuffix("/docker-29.nft.json") }
    }

    @Test(arguments: dockerNftablesGoldens)
    func dockerNftablesGoldensImportOnMeaning(_ golden: String) throws {
        let path = Repo.golden + "/" + golden
        let (policy, audit) = try importAndAudit(path, from: "nft-json")
        if policy.contains("# not imported:") {
            #expect(audit.status == 1)
        } else {
            #expect(audit.status == 0, "\(golden): \(audit.stdout)\n\(policy)")
        }
        if !policy.contains("# not imported:") && !policy.contains("# From the rules in") {
            let compiled = run([CommandLineTests.binary, "compile", scratchWrite(policy), "--backend", "nftables-json"])
            #expect(compiled.stdout == Repo.read(path), "\(golden)")
        }
    }

    @Test func unknownSubnetsAreReportedNotInvented() throws {
        let result = run([CommandLineTests.binary, "import", "\(Self.directory)/s09-masq-off.rules"])
        #expect(result.status == 0)
        #expect(result.stderr.contains("not imported: network on bridge br-nomasq: its subnet is not in the rules"))
        #expect(result.stdout.contains("# not imported: network on bridge br-nomasq"))
        #expect(result.stdout.contains("network net-br-masq {\n    bridge br-masq\n    subnet 198.18.6.0/24\n}"))
        #expect(result.stdout.contains("# Containers are named after their address"))
    }

    @Test func badInputIsAnError() {
        let truncated = String(Repo.read(Repo.golden + "/web-stack/docker-20.10.iptables").prefix(300))
        let result = run([CommandLineTests.binary, "import", "-"], input: truncated)
        #expect(result.status == 2 && result.stderr.contains("error: -: line ") && result.stdout.isEmpty)
        let empty = run([CommandLineTests.binary, "import", "-"], input: "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
        #expect(empty.status == 2 && empty.stderr.contains("holds no Docker rules"))
        let layout = run([CommandLineTests.binary, "import", "-", "--layout", "native"], input: truncated)
        #expect(layout.status == 2 && layout.stderr.contains("import reads the layouts"))
    }
}

/// Findings of an audit's JSON as "id table/chain rule" lines.
enum JSONSummary {
    static func findings(_ text: String) throws -> [String]? {
        let document = try JanssonKit.JSON.parse(text)
        return document["findings"]?.arrayValue?.map { finding in
            let id = finding["id"]?.stringValue ?? ""
            let place = "\(finding["table"]?.stringValue ?? "")/\(finding["chain"]?.stringValue ?? "")"
            return "\(id) \(place) \(finding["rule"]?.stringValue ?? "")"
        }
    }
}
