import Foundation
import JanssonKit
import PortcullisAudit
import PortcullisIR
import PortcullisNet
import PortcullisReaders
import PortcullisRender
import PortcullisSyntax
import Testing

@testable import PortcullisPolicy

/// Input written to break the readers and the checker: numbers out of range, CRLF files, text
/// that only looks like a ruleset, values nft cannot take, and input large enough to make
/// quadratic work show. Each is read correctly or refused with its location; none crashes,
/// hangs or audits as clean.
@Suite struct HostileInputTests {
    // MARK: - JSON numbers

    @Test func realsAreKeptAsRealsNotConverted() throws {
        let document = try JSON.parse(#"{"a": [3, -1e19, 80.5, 1e308]}"#)
        #expect(document == .object([("a", .array([.integer(3), .real(-1e19), .real(80.5), .real(1e308)]))]))
        #expect(document["a"]?.arrayValue?[1].integerValue == nil)
        #expect(document.firstReal?.path == "$.a[1]")
        #expect(try JSON.parse(document.rendered(indent: 0)) == document)
    }

    @Test(arguments: [
        (
            #"{"nftables":[{"metainfo":{"json_schema_version":-1e19}}]}"#,
            "$.nftables[0].metainfo.json_schema_version: -1e+19 is not an integer"
        ),
        (
            ReaderTests.document(
                #"{"chain": {"family": "ip", "table": "t", "name": "c"}}"#,
                #"{"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80.5}}]}}"#
            ),
            "$.nftables[2].rule.expr[0].match.right: 80.5 is not an integer"
        ),
        (
            ReaderTests.document(
                #"{"chain": {"family": "ip", "table": "t", "name": "c", "type": "filter", "hook": "input", "prio": 9223372036854775807}}"#
            ),
            "$.nftables[1].chain.prio: 9223372036854775807 is out of range"
        ),
    ])
    func numbersOutOfRangeAreErrorsWithTheirPath(_ text: String, _ message: String) {
        #expect {
            _ = try NftJSONReader().read(text)
        } throws: { error in
            (error as? ReadError).map { "\($0)".contains(message) } ?? false
        }
    }

    /// The document of the report crashed `audit` and `import`; both now exit 2 naming the path.
    @Test(arguments: [["audit", "--ruleset", "-"], ["import", "--from", "nft-json", "-"]])
    func commandsRefuseAnOutOfRangeNumber(_ arguments: [String]) {
        let result = run(
            [CommandLineTests.binary] + arguments, input: #"{"nftables":[{"metainfo":{"json_schema_version":-1e19}}]}"#)
        #expect(result.status == 2)
        #expect(result.stderr.contains("$.nftables[0].metainfo.json_schema_version"), "\(result.stderr)")
    }

    @Test func negativeRatesAreNotModelled() throws {
        let text = ReaderTests.document(
            #"{"chain": {"family": "ip", "table": "t", "name": "c"}}"#,
            #"{"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"limit": {"rate": -5, "per": "second"}}]}}"#
        )
        let result = try NftJSONReader().read(text)
        #expect(
            result.ruleset.tables[0].chains[0].rules[0].matches.allSatisfy {
                if case .opaque = $0 { true } else { false }
            })
        #expect(result.warnings.count == 1)
    }

    /// Address ranges read as the prefixes that cover them; in a concatenated key they multiply
    /// (254³ elements here), so the reader refuses them instead of running out of memory.
    @Test func concatenatedRangesThatMultiplyPastTheLimitAreRefused() {
        let range = #"{"range": ["::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"]}"#
        let text = ReaderTests.document(
            #"{"set": {"family": "ip", "table": "t", "name": "s", "type": ["ipv6_addr", "ipv6_addr", "ipv6_addr"], "flags": ["interval"], "elem": [{"concat": [\#(range), \#(range), \#(range)]}]}}"#
        )
        #expect {
            _ = try NftJSONReader().read(text)
        } throws: { error in
            (error as? ReadError).map { "\($0)".contains("$.nftables[1].set.elem[0]: the key's address ranges") }
                ?? false
        }
    }

    /// A lookup is read only when its key has a field of the set's type per key type; others
    /// are kept as written. `{"concat": []}` (found by fuzzing import) read as a lookup with no
    /// key fields, and the native importer trapped on the missing first field.
    @Test(arguments: [
        #"{"match": {"op": "==", "left": {"concat": []}, "right": "@ports"}}"#,
        #"{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@ports"}}"#,
        #"{"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}}, "data": "@ports"}}"#,
    ])
    func lookupsThatDoNotFitTheirSetAreKeptOpaque(_ expression: String) throws {
        let text = ReaderTests.document(
            #"{"chain": {"family": "ip", "table": "t", "name": "c"}}"#,
            #"{"set": {"family": "ip", "table": "t", "name": "ports", "type": "inet_service"}}"#,
            #"{"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [\#(expression)]}}"#)
        let result = try NftJSONReader().read(text)
        let rule = try #require(result.ruleset.tables.first?.chains.first?.rules.first)
        let opaque = rule.matches.filter { if case .opaque = $0 { true } else { false } }.count
        let opaqueAction = rule.action.map { if case .opaque = $0 { 1 } else { 0 } } ?? 0
        #expect(opaque + opaqueAction == 1)
        #expect(!rule.matches.contains { if case .inSet = $0 { true } else { false } })
        #expect(result.warnings.count == 1)
    }

    /// The minimized input: `import` trapped in NativeImporter; now the lookup is kept as
    /// written with a warning naming its path.
    @Test func importOfAnEmptyLookupKeyDoesNotCrash() {
        let text = """
            {"nftables": [{"table": {"family": "inet", "name": "portcullis"}},
             {"chain": {"family": "inet", "table": "portcullis", "name": "forward"}},
             {"set": {"family": "inet", "table": "portcullis", "name": "flow-2-v4", "type": ["inet_service"]}},
             {"rule": {"family": "inet", "table": "portcullis", "chain": "forward",
               "expr": [{"match": {"op": "==", "left": {"concat": []}, "right": "@flow-2-v4"}}, {"accept": null}]}}]}
            """
        let result = run([CommandLineTests.binary, "import", "--from", "nft-json", "-"], input: text)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("$.nftables[3].rule.expr[0]: kept as written"))
    }

    /// Found by fuzzing import: a native flow set with no elements traps NativeImporter
    /// (`endpoints[0]` of a flow with no endpoints). It matches nothing: import says so in a
    /// `# not imported:` line.
    @Test func importOfAnEmptyNativeFlowSet() {
        let text = """
            {"nftables": [{"table": {"family": "inet", "name": "portcullis"}},
             {"chain": {"family": "inet", "table": "portcullis", "name": "forward"}},
             {"set": {"family": "inet", "table": "portcullis", "name": "flow-2-v4",
               "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"]}},
             {"rule": {"family": "inet", "table": "portcullis", "chain": "forward", "expr": [
               {"match": {"op": "==", "right": "@flow-2-v4", "left": {"concat": [
                 {"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "ip", "field": "daddr"}},
                 {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}}},
               {"accept": null}]}}]}
            """
        #expect(throws: Never.self) { _ = try NftJSONReader().read(text) }
        let result = run([CommandLineTests.binary, "import", "--from", "nft-json", "-"], input: text)
        #expect(result.status == 0, "\(result.stderr.prefix(300))")
        #expect(result.stdout.contains("# not imported: flow-2") && result.stdout.contains("has no elements"))
    }

    /// libjansson stops at 2048 levels; deeper documents are errors, shallower ones are read.
    @Test(arguments: [100, 2000, 5000])
    func deeplyNestedJSONIsReadOrRefused(_ depth: Int) {
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(throws: ReadError.self) { _ = try NftJSONReader().read(text) }
    }

    // MARK: - iptables-save text

    /// Every text the repository holds, written with CRLF line ends, reads as the original.
    @Test func crlfReadsAsLF() throws {
        for (name, text, family) in ReaderTests.sources {
            let reader = IptablesSaveReader(family: family)
            let crlf = text.replacingOccurrences(of: "\n", with: "\r\n")
            let (expected, _) = try reader.read(text)
            let (read, _) = try reader.read(crlf)
            #expect(
                try IptablesRenderer().render(read)[0].text == IptablesRenderer().render(expected)[0].text, "\(name)")
        }
    }

    /// A CRLF copy of a capture was read as one comment line and audited as clean.
    @Test func auditOfACRLFCaptureFindsWhatTheOriginalHas() throws {
        let text = Repo.read(Repo.fixtures + "/docker-20.10/s03-hostip-udp.rules")
        let original = run([CommandLineTests.binary, "audit", "--ruleset", "-", "--format", "json"], input: text)
        let crlf = run(
            [CommandLineTests.binary, "audit", "--ruleset", "-", "--format", "json"],
            input: text.replacingOccurrences(of: "\n", with: "\r\n"))
        #expect(original.status == 1)
        #expect(crlf.status == 1)
        #expect(crlf.stdout == original.stdout)
    }

    @Test(arguments: [
        ("# Generated by iptables-save v1.8.9\n# Completed\n", 1, "only comments, no table"),
        (
            "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n",
            4, "iptables-legacy tables are present"
        ),
        ("*filter\r:INPUT ACCEPT [0:0]\rCOMMIT\r", 1, "control character U+D"),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\u{0}\nCOMMIT\n", 3, "control character U+0"),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"x\\", 3, "unterminated quoted string"),
    ])
    func garbledTextIsRefusedWithItsLine(_ text: String, _ line: Int, _ message: String) {
        #expect {
            _ = try IptablesSaveReader().read(text)
        } throws: { error in
            (error as? ReadError).map { $0.message.contains(message) && $0.line == line } ?? false
        }
    }

    @Test func emptyTextIsAHostWithoutTables() throws {
        #expect(try IptablesSaveReader().read("").0.tables.isEmpty)
    }

    /// Port options that are not ports are kept as written (this one used to trap on `parts[0]`).
    @Test(arguments: [":", "90:80", "1:2:3", "", "70000"])
    func badPortsAreKeptOpaque(_ ports: String) throws {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport \"\(ports)\" -j ACCEPT\nCOMMIT\n"
        let (ruleset, warnings) = try IptablesSaveReader().read(text)
        let rule = try #require(ruleset.tables.first?.chains.first?.rules.first)
        #expect(rule.action == .accept)
        #expect(rule.matches.contains { if case .opaque = $0 { true } else { false } })
        #expect(warnings.count == 1)
    }

    /// A combining mark right after a quote makes one Character with it; the quote still counts.
    @Test func aCombiningMarkDoesNotHideAQuote() throws {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"\u{301}x y\" -j DROP\nCOMMIT\n"
        let (ruleset, _) = try IptablesSaveReader().read(text)
        #expect(ruleset.tables.first?.chains.first?.rules.first?.action == .drop)
    }

    // MARK: - values nft cannot take

    static let network = "network n {\n    bridge BRIDGE\n    subnet 198.18.1.0/24\n}\n"

    @Test(arguments: ["@br0", "tcp", "icmp", "redirect"])
    func interfaceNamesNftCannotTakeAreRefused(_ name: String) throws {
        let diagnostics = diagnose(["main.policy": Self.network.replacingOccurrences(of: "BRIDGE", with: name)])
        let error = try #require(diagnostics.first)
        #expect(diagnostics.count == 1)
        #expect(error.message.hasPrefix("interface name '\(name)'"), "\(error.message)")
        #expect((error.range.start.line, error.range.start.column) == (2, 12))
        #expect(error.hint?.contains("nft") == true)
    }

    @Test(arguments: ["ip", "dnat", "1234", "br@0", "a.b"])
    func interfaceNamesNftTakesPass(_ name: String) {
        #expect(diagnose(["main.policy": Self.network.replacingOccurrences(of: "BRIDGE", with: name)]).isEmpty)
    }

    @Test func aDollarInALogPrefixIsRefused() throws {
        let text = "host {\n    log-drops rate 10/minute prefix \"drop$x: \"\n}\n"
        let error = try #require(diagnose(["main.policy": text]).first)
        #expect(error.message == "log prefix contains '$'")
        #expect((error.range.start.line, error.range.start.column) == (2, 37))
    }

    /// What the checker lets through, nft loads: names and a prefix right at the edge of the
    /// rules, in every nft output, checked by libnftables in a namespace of its own.
    @Test(.enabled(if: Kernel.enabled, Kernel.reason))
    func edgeValuesLoadIntoNft() throws {
        let policy = """
            host {
                external ip
                log-drops rate 10/minute prefix "a#{}%;@*'`: "
            }
            network n {
                bridge br@0
                subnet 198.18.1.0/24
            }
            container web {
                attach n 198.18.1.10
                publish 80 -> 8080/tcp
            }
            container api {
                attach n 198.18.1.11
            }
            deny web -> api port 5/tcp

            """
        let path = NSTemporaryDirectory() + "portcullis-edge-\(getpid()).policy"
        try policy.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let namespace = try TestNamespace()
        for layout in ["docker-20.10", "native"] {
            for backend in ["nftables", "nftables-json"] {
                let compiled = run(
                    [CommandLineTests.binary, "compile", path, "--layout", layout, "--backend", backend])
                #expect(compiled.status == 0, "\(compiled.stderr)")
                let result = try namespace.nftDryRun(compiled.stdout)
                #expect(result.succeeded, "\(layout) \(backend): \(result.error)")
            }
        }
    }

    // MARK: - bounded checking

    /// 800 networks on one subnet: one diagnostic per network after the first, each naming
    /// three networks and counting the rest (it was every pair: 319,600 diagnostics).
    @Test func overlappingNetworksGiveOneDiagnosticEach() {
        let count = 800
        let text = (0..<count).map { "network n\($0) {\n    bridge br\($0)\n    subnet 10.0.0.0/16\n}\n" }.joined()
        let diagnostics = diagnose(["main.policy": text])
        #expect(diagnostics.count == count - 1)
        #expect(
            diagnostics.last?.message
                == "subnet 10.0.0.0/16 overlaps 10.0.0.0/16 of network 'n0', 10.0.0.0/16 of network 'n1', 10.0.0.0/16 of network 'n2' and 796 more networks"
        )
        #expect(diagnostics[0].message == "subnet 10.0.0.0/16 overlaps 10.0.0.0/16 of network 'n0'")
        #expect(
            diagnostics[1].message
                == "subnet 10.0.0.0/16 overlaps 10.0.0.0/16 of network 'n0' and 10.0.0.0/16 of network 'n1'")
    }

    /// Every unknown name is an error, but only the first hundred compare it with every declared
    /// name for a suggestion: 5,000 typos among 5,000 containers took 49 s.
    @Test func suggestionsForUnknownNamesAreBounded() {
        let containers = (0..<150).map { "container c\($0) {\n    attach n 10.0.\($0).2\n}\n" }.joined()
        let rules = (0..<150).map { "allow x\($0) -> c\($0)\n" }.joined()
        let text = "network n {\n    bridge br0\n    subnet 10.0.0.0/16\n}\n" + containers + rules
        let diagnostics = diagnose(["main.policy": text])
        #expect(diagnostics.count == 150)
        #expect(diagnostics.prefix(Checker.suggestionLimit).allSatisfy { $0.hint?.hasPrefix("did you mean") == true })
        #expect(
            diagnostics.dropFirst(Checker.suggestionLimit).allSatisfy {
                $0.hint?.hasPrefix("check the spelling") == true
            })
        #expect(diagnostics.last?.message == "unknown container, group or network 'x149'")
    }

    /// A chain of thousands of rules, each written twice: every second copy is a duplicate
    /// (found by hashing; comparing each rule with all before it took minutes at 10,000 containers).
    @Test func duplicatesInALongChainAreEachFoundOnce() throws {
        let rules = (0..<4000).map {
            "-A DOCKER -d 198.18.\($0 / 250).\($0 % 250)/32 -p tcp -m tcp --dport 80 -j ACCEPT\n"
        }
        let text = "*filter\n:DOCKER - [0:0]\n" + zip(rules, rules).map { $0 + $1 }.joined() + "COMMIT\n"
        let (ruleset, _) = try IptablesSaveReader().read(text)
        let findings = RiskAudit(ruleset: ruleset).findings().filter { $0.id == .duplicateRule }
        #expect(findings.count == 4000)
        #expect(findings.first?.rule?.provenance?.line == 4)
    }

    /// The index finds what comparing every pair finds: how many earlier subnets overlap, and
    /// the first ones in declaration order.
    @Test func subnetIndexAgreesWithPairwiseComparison() {
        var generator = SeededGenerator(seed: 0x0E1A)
        for family in [IPFamily.ipv4, .ipv6] {
            var index = SubnetOverlaps()
            var earlier: [IPPrefix] = []
            for position in 0..<400 {
                // Few distinct top bits so that many subnets nest.
                let bits = UInt8.random(in: 0..<4, using: &generator) << 6
                let text = family == .ipv4 ? "10.\(bits).0.0" : "fd00:\(String(bits, radix: 16))::"
                let length = Int.random(in: 8...(family == .ipv4 ? 30 : 64), using: &generator)
                let subnet = IPPrefix(address: IPAddress(text)!, length: length).network
                let expected = earlier.indices.filter { earlier[$0].overlaps(subnet) }
                let found = index.add(subnet, position: position)
                #expect(found.count == expected.count)
                #expect(found.first == Array(expected.prefix(SubnetOverlaps.named)))
                earlier.append(subnet)
            }
        }
    }
}
