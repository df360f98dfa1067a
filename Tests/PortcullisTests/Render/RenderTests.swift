import JanssonKit
import PortcullisCompiler
import PortcullisIR
import PortcullisNet
import PortcullisRender
import Testing

/// Renderer behaviour not covered by the golden files: sets and verdict maps (the native
/// layout's building blocks), what a backend cannot express, and JSON through libjansson.
@Suite struct RenderTests {
    /// A table using a concatenated set, an interval set and a verdict map.
    static let setTable = Table(
        family: .inet, name: "portcullis",
        chains: [
            Chain(
                name: "forward", base: BaseChain(type: .filter, hook: .forward, priority: 0, policy: .drop),
                rules: [
                    Rule([.connectionState([.established, .related])], .accept),
                    Rule(
                        [.inSet(keys: [.sourceAddress, .destinationAddress, .destinationPort], set: "flows")], .accept,
                        comment: RuleComment("portcullis: allowed flows")),
                    Rule([.interface(.source, "br-a")], .verdictMap(keys: [.outputInterface], map: "isolation")),
                    Rule([.inSet(keys: [.destinationAddress], set: "blocked", negated: true)], .accept),
                ]),
            Chain(name: "isolated", rules: [Rule([], effects: [.counter], .drop)]),
        ],
        sets: [
            NamedSet(
                name: "flows", keyTypes: [.ipv4Address, .ipv4Address, .service], interval: false,
                elements: [
                    SetElement(key: [
                        .address(IPPrefix(host: IPAddress("198.18.1.10")!)),
                        .address(IPPrefix(host: IPAddress("198.18.2.10")!)), .ports(PortRange(8000)),
                    ])
                ]),
            NamedSet(
                name: "blocked", keyTypes: [.ipv4Address], interval: true,
                elements: [SetElement(key: [.address(try! IPPrefix.parse("203.0.113.0/24").get())])]),
            NamedSet(
                name: "isolation", keyTypes: [.interfaceName], mapValue: .verdict, interval: false,
                elements: [
                    SetElement(key: [.interface("br-b")], value: .verdict(.jump("isolated"))),
                    SetElement(key: [.interface("br-a")], value: .verdict(.accept)),
                ]),
        ])

    @Test func setsAndMapsRenderAsNftText() throws {
        let text = try NftTextRenderer().render(Ruleset(tables: [Self.setTable]))[0].text
        #expect(text.contains("\tset flows {\n\t\ttype ipv4_addr . ipv4_addr . inet_service\n"))
        #expect(text.contains("elements = { 198.18.1.10 . 198.18.2.10 . 8000 }"))
        #expect(text.contains("\t\tflags interval\n\t\telements = { 203.0.113.0/24 }"))
        #expect(text.contains("type ifname : verdict"))
        #expect(text.contains("\"br-b\" : jump isolated"))
        #expect(text.contains("ip saddr . ip daddr . th dport @flows accept comment \"portcullis: allowed flows\""))
        #expect(text.contains("iifname \"br-a\" oifname vmap @isolation"))
        #expect(text.contains("ip daddr != @blocked accept"))
    }

    @Test func setsCannotBeWrittenForIptables() {
        #expect(throws: RenderError.self) { try IptablesRenderer().render(Ruleset(tables: [Self.setTable])) }
    }

    @Test func checksumFillHasNoNftablesForm() throws {
        let table = Table(
            family: .ip, name: "mangle",
            chains: [
                Chain(
                    name: "POSTROUTING", base: BaseChain(type: .filter, hook: .postrouting, priority: -150),
                    rules: [Rule([.transport(.sctp), .port(.source, PortRange(3868))], .checksumFill)])
            ])
        #expect(throws: RenderError.self) { try NftTextRenderer().render(Ruleset(tables: [table])) }
        #expect(throws: RenderError.self) { try NftJSONRenderer().render(Ruleset(tables: [table])) }
        let iptables = try IptablesRenderer().render(Ruleset(tables: [table]))[0].text
        #expect(iptables.contains("-A POSTROUTING -p sctp -m sctp --sport 3868 -j CHECKSUM --checksum-fill\n"))
    }

    @Test func nftIdentifiersAreNeverQuotedOrKeywords() {
        let table = Table(family: .ip, name: "filter", chains: [Chain(name: "fwd")])
        #expect(throws: RenderError.self) { try NftTextRenderer().render(Ruleset(tables: [table])) }
        let odd = Table(family: .ip, name: "filter", chains: [Chain(name: "a\"b")])
        #expect(throws: RenderError.self) { try NftTextRenderer().render(Ruleset(tables: [odd])) }
    }

    @Test func jsonRoundTripsThroughLibjansson() throws {
        let text = try NftJSONRenderer().render(Ruleset(tables: [Self.setTable]))[0].text
        let parsed = try JSON.parse(text)
        let objects = try #require(parsed["nftables"]?.arrayValue)
        #expect(objects.first?["metainfo"] != nil)
        #expect(objects.contains { $0["map"]?["map"]?.stringValue == "verdict" })
        #expect(try JSON.parse(parsed.rendered()) == parsed)
        #expect(JSON.string("quote \" and \\ and \u{1}").rendered() == "\"quote \\\" and \\\\ and \\u0001\"")
    }

    @Test func malformedJSONIsReportedWithItsPosition() {
        #expect {
            try JSON.parse("{\n  \"a\": [1, 2,\n}")
        } throws: { error in
            guard let error = error as? JSONParseError else { return false }
            return error.line == 3
        }
    }

    @Test func unifiedDiffHunks() {
        let old = (1...20).map { "line \($0)" }.joined(separator: "\n") + "\n"
        let new = old.replacingOccurrences(of: "line 10\n", with: "line ten\n")
        let diff = UnifiedDiff.make(old: old, new: new, oldName: "a", newName: "b")
        #expect(
            diff
                == "--- a\n+++ b\n@@ -7,7 +7,7 @@\n line 7\n line 8\n line 9\n-line 10\n+line ten\n line 11\n line 12\n line 13\n"
        )
        #expect(UnifiedDiff.make(old: old, new: old, oldName: "a", newName: "b") == nil)
        let appended = UnifiedDiff.make(old: "", new: "x\n", oldName: "a", newName: "b")
        #expect(appended == "--- a\n+++ b\n@@ -0,0 +1,1 @@\n+x\n")
    }
}

/// The set table is valid nftables: the kernel accepts it in a namespace.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason))
struct SetKernelTests {
    @Test func setTablePassesDryRunInTextAndJSON() throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let ruleset = Ruleset(tables: [RenderTests.setTable])
        let text = try NftTextRenderer().render(ruleset)[0].text
        let json = try NftJSONRenderer().render(ruleset)[0].text
        let (textResult, textListing) = try namespace.nftApplyAndList(text)
        #expect(textResult.succeeded, "\(textResult.error)\n\(text)")
        let other = try TestNamespace()
        let (jsonResult, jsonListing) = try other.nftApplyAndList(json)
        #expect(jsonResult.succeeded, "\(jsonResult.error)")
        #expect(textListing == jsonListing)
    }
}
