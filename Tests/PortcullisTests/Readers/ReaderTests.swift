import Foundation
import PortcullisCompiler
import PortcullisIR
import PortcullisNet
import PortcullisReaders
import PortcullisRender
import Testing

/// Reading iptables-save output back into the IR: render(read(X)) == X for every golden file and
/// every real-Docker capture; what is not modelled is kept verbatim with a warning; malformed
/// input is an error with its line, never a crash and never a partial read.
@Suite struct ReaderTests {
    /// Every iptables text the repository holds: golden files (`.iptables`, `.ip6tables`), the
    /// IPv4/IPv6 parts of captures (`.rules`) and the verbatim unit goldens (`.iptables`,
    /// `.ip6tables`), each with the family it is read as.
    static var sources: [(name: String, text: String, family: TableFamily)] {
        var result: [(String, String, TableFamily)] = []
        let manager = FileManager.default
        func family(_ file: String) -> TableFamily { file.hasSuffix(".ip6tables") ? .ip6 : .ip }
        for folder in ((try? manager.contentsOfDirectory(atPath: Repo.golden)) ?? []).sorted() {
            for file in ((try? manager.contentsOfDirectory(atPath: Repo.golden + "/" + folder)) ?? []).sorted()
            where file.hasSuffix(".iptables") || file.hasSuffix(".ip6tables") {
                result.append(
                    ("golden/\(folder)/\(file)", Repo.read(Repo.golden + "/\(folder)/\(file)"), family(file)))
            }
        }
        for folder in ((try? manager.contentsOfDirectory(atPath: Repo.fixtures)) ?? []).sorted() {
            for file in ((try? manager.contentsOfDirectory(atPath: Repo.fixtures + "/" + folder)) ?? []).sorted() {
                let text = Repo.read(Repo.fixtures + "/\(folder)/\(file)")
                if file.hasSuffix(".iptables") || file.hasSuffix(".ip6tables") {
                    let lines = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
                    result.append(("\(folder)/\(file)", lines.joined(separator: "\n") + "\n", family(file)))
                }
                guard file.hasSuffix(".rules") else { continue }
                for (index, part) in text.components(separatedBy: "#### ip6tables").enumerated() {
                    let lines = part.split(separator: "\n").filter { !$0.hasPrefix("#") }
                    if lines.isEmpty { continue }
                    result.append(
                        (
                            "\(folder)/\(file)\(index == 0 ? "" : " (IPv6)")", lines.joined(separator: "\n") + "\n",
                            index == 0 ? .ip : .ip6
                        ))
                }
            }
        }
        return result
    }

    static var texts: [(String, String)] { sources.map { ($0.name, $0.text) } }

    @Test func thereIsMuchToRead() {
        #expect(Self.texts.count >= 30)
        let names = Set(Self.texts.map(\.0))
        // The IPv6 goldens and the verbatim unit goldens of docker-28/29 are among them.
        for name in [
            "golden/dual-stack/docker-28.ip6tables", "docker-28-ipv6/u59-nat.ip6tables",
            "docker-29-ipv6/u69-internal.iptables", "docker-29-gateway-modes/u69-natunprot.iptables",
            "docker-28-gateway-modes/s58-usernet-portmap-routed.rules",
        ] {
            #expect(names.contains(name), "\(name)")
        }
    }

    @Test(arguments: texts.map(\.0))
    func rendersBackIdentically(_ name: String) throws {
        let source = try #require(Self.sources.first { $0.name == name })
        let (ruleset, warnings) = try IptablesSaveReader(family: source.family, source: name).read(source.text)
        #expect(warnings.isEmpty, "\(warnings)")
        #expect(ruleset.tables.allSatisfy { $0.family == source.family })
        let rendered = try IptablesRenderer().render(ruleset).first {
            $0.fileExtension == (source.family == .ip6 ? "ip6tables" : "iptables")
        }?.text
        #expect(rendered == source.text)
    }

    static var jsonGoldens: [String] {
        let manager = FileManager.default
        return ((try? manager.contentsOfDirectory(atPath: Repo.golden)) ?? []).sorted().flatMap { folder in
            ((try? manager.contentsOfDirectory(atPath: Repo.golden + "/" + folder)) ?? []).sorted()
                .filter { $0.hasSuffix(".nft.json") }.map { folder + "/" + $0 }
        }
    }

    @Test(arguments: jsonGoldens)
    func nftJSONRendersBackIdentically(_ golden: String) throws {
        let text = Repo.read(Repo.golden + "/" + golden)
        let read = try NftJSONReader(source: golden).read(text)
        #expect(read.warnings.isEmpty, "\(read.warnings)")
        let ruleset = read.ruleset
        let rendered = try NftJSONRenderer().render(ruleset)[0].text
        #expect(
            rendered == text,
            "\(UnifiedDiff.make(old: text, new: rendered, oldName: golden, newName: "read and rendered") ?? "")")
        // And the IR is the one the iptables text gives, rule for rule.
        let iptables = Repo.read(Repo.golden + "/" + golden.replacingOccurrences(of: ".nft.json", with: ".iptables"))
        if !iptables.isEmpty && ruleset.tables.allSatisfy({ $0.family == .ip && $0.sets.isEmpty }) {
            let (fromText, _) = try IptablesSaveReader().read(iptables)
            for table in fromText.tables {
                for chain in table.chains {
                    let other = ruleset.table(.ip, table.name)?.chain(chain.name)
                    #expect(other?.rules.map(\.matches).map(Set.init) == chain.rules.map(\.matches).map(Set.init))
                    #expect(other?.rules.map(\.action) == chain.rules.map(\.action))
                }
            }
        }
    }

    /// Docker 29's own nftables tables (Fixtures/docker-29-nftables: every VERBATIM dump, the
    /// routed network's ICMP accept among them) as nft JSON: read without a warning, written
    /// back to the same JSON, and printed as nft text they are Docker's dump.
    @Test(arguments: Docker29NftablesTests.scenarios)
    func dockerNftablesDumpsReadBack(_ scenario: String) throws {
        let json = try Docker29NftablesTests.compile(scenario, backend: "nftables-json")
        let read = try NftJSONReader(source: scenario).read(json)
        #expect(read.warnings.isEmpty, "\(read.warnings)")
        #expect(try NftJSONRenderer().render(read.ruleset)[0].text == json)
        let text = try NftTextRenderer().render(read.ruleset)[0].text
        let expected = Docker29NftablesTests.expected(scenario)
        #expect(
            text == expected, "\(UnifiedDiff.make(old: expected, new: text, oldName: scenario, newName: "read") ?? "")")
        if scenario.hasSuffix("-routed") {
            let chain = read.ruleset.table(.ip, "docker-bridges")?.chain("filter-forward-in__bridge1")
            #expect(chain?.rules.contains { $0.matches == [.icmp] && $0.action == .accept } == true)
        }
    }

    /// ICMP as Docker and iptables-nft spell it is `Match.icmp` in the table's family; what is
    /// not the same condition (negated, another family's ICMP, an inet table's `meta l4proto`)
    /// is kept as written.
    @Test(arguments: [
        ("ip", #"{"payload": {"protocol": "ip", "field": "protocol"}}"#, "==", #""icmp""#, true),
        ("ip", #"{"meta": {"key": "l4proto"}}"#, "==", #""icmp""#, true),
        ("ip", #"{"meta": {"key": "l4proto"}}"#, "==", "1", true),
        ("inet", #"{"payload": {"protocol": "ip", "field": "protocol"}}"#, "==", #""icmp""#, true),
        ("ip6", #"{"meta": {"key": "l4proto"}}"#, "==", #""ipv6-icmp""#, true),
        ("ip6", #"{"meta": {"key": "l4proto"}}"#, "==", #""icmp""#, false),
        ("ip", #"{"payload": {"protocol": "ip", "field": "protocol"}}"#, "!=", #""icmp""#, false),
        ("inet", #"{"meta": {"key": "l4proto"}}"#, "==", #""icmp""#, false),
    ])
    func icmpIsModelledInItsFamily(_ family: String, _ left: String, _ op: String, _ right: String, _ modelled: Bool)
        throws
    {
        let text = """
            {"nftables": [{"table": {"family": "\(family)", "name": "t"}},
            {"chain": {"family": "\(family)", "table": "t", "name": "c"}},
            {"rule": {"family": "\(family)", "table": "t", "chain": "c", "expr": [
            {"match": {"op": "\(op)", "left": \(left), "right": \(right)}}, {"accept": null}]}}]}
            """
        let read = try NftJSONReader().read(text)
        let rule = try #require(read.ruleset.tables.first?.chains.first?.rules.first)
        if modelled {
            #expect(rule.matches == [.icmp] && read.warnings.isEmpty)
        } else {
            #expect(rule.matches.allSatisfy { if case .opaque = $0 { true } else { false } })
            #expect(read.warnings.count == 1)
        }
    }

    @Test(arguments: [
        ("{\"nftables\": [", "invalid JSON"), ("[]", "expected an object with an 'nftables' array"),
        (
            "{\"nftables\": [{\"rule\": {\"family\": \"ip\", \"table\": \"t\", \"chain\": \"c\", \"expr\": []}}]}",
            "table ip t is not declared"
        ),
        (Self.document(#"{"flowtablex": {}}"#), "$.nftables[1]: unsupported object 'flowtablex'"),
        (
            Self.document(
                #"{"chain": {"family": "ip", "table": "t", "name": "i", "type": "filter", "hook": "ingress", "prio": 0}}"#
            ),
            "$.nftables[1].chain: hook 'ingress' is not supported"
        ),
        (
            Self.document(
                #"{"set": {"family": "ip", "table": "t", "name": "s", "type": "ipv4_addr", "elem": ["300.1.1.1"]}}"#),
            "$.nftables[1].set.elem[0]: not a valid ipv4_addr value"
        ),
        (
            Self.document(
                #"{"map": {"family": "ip", "table": "t", "name": "m", "type": "ifname", "map": "verdict", "elem": [["a", {"dnat": null}]]}}"#
            ),
            "$.nftables[1].map.elem[0]: not a verdict"
        ),
        (
            Self.document(#"{"rule": {"family": "ip", "table": "t", "chain": "nope", "expr": []}}"#),
            "$.nftables[1].rule: chain nope is not declared"
        ),
        (
            Self.document(
                #"{"chain": {"family": "ip", "table": "t", "name": "c"}}"#,
                #"{"rule": {"family": "ip", "table": "t", "chain": "c", "expr": [{"accept": null}, {"drop": null}]}}"#),
            "$.nftables[2].rule.expr[1]: 'drop' after the rule's verdict"
        ),
    ])
    func malformedJSONIsAnErrorWithItsPath(_ text: String, _ message: String) {
        #expect {
            _ = try NftJSONReader().read(text)
        } throws: { error in
            (error as? ReadError).map { "\($0)".contains(message) } ?? false
        }
    }

    /// A document with table `ip t` and the given objects after it.
    static func document(_ objects: String...) -> String {
        #"{"nftables": [{"table": {"family": "ip", "name": "t"}}, "# + objects.joined(separator: ", ") + "]}"
    }

    /// A real listing: iptables-nft's Docker rules with xt expressions, sets and maps of every
    /// kind, counters, handles, comments, a named counter and a bridge table.
    @Test func realListingIsReadWithoutLosingAnything() throws {
        let text = Repo.read(Repo.fixtures + "/nft/iptables-nft-docker-and-sets.json")
        let read = try NftJSONReader(source: "live.json").read(text)
        #expect(read.skippedTables == ["bridge b"])
        let tables = read.ruleset.tables.map { "\($0.family.rawValue) \($0.name)" }
        #expect(tables == ["ip filter", "ip nat", "ip mangle", "inet portal"])
        // xt expressions are kept, each with a warning naming its JSON path.
        let filter = try #require(read.ruleset.table(.ip, "filter"))
        let user = try #require(filter.chain("DOCKER-USER")?.rules.last)
        #expect(user.matches == [.opaque("xt match physdev"), .opaque("xt match comment")])
        #expect(user.action == .drop && user.effects == [.counter])
        let mss = try #require(read.ruleset.table(.ip, "mangle")?.chain("FORWARD")?.rules.first)
        #expect(mss.action == .opaque("xt target TCPMSS"))
        #expect(
            read.warnings.contains {
                $0.path?.hasSuffix(".rule.expr[2]") == true && $0.message.contains("xt target TCPMSS")
            })
        // Modelled iptables-nft rules become ordinary IR.
        let accept = try #require(filter.chain("DOCKER")?.rules.last)
        #expect(accept.action == .accept && accept.effects == [.counter])
        #expect(
            Set(accept.matches) == [
                .interface(.source, "docker0", negated: true), .interface(.destination, "docker0"),
                .address(.destination, IPPrefix(host: IPAddress("172.17.0.2")!)), .transport(.tcp),
                .port(.destination, PortRange(80)),
            ])
        // iptables-nft writes DNAT as an xt target: kept, with its JSON path.
        let dnat = try #require(read.ruleset.table(.ip, "nat")?.chain("DOCKER")?.rules.last)
        #expect(dnat.action == .opaque("xt target DNAT"))
        #expect(dnat.provenance?.statement.contains("(handle ") == true)

        let portal = try #require(read.ruleset.table(.inet, "portal"))
        func set(_ name: String) throws -> NamedSet { try #require(portal.sets.first { $0.name == name }) }
        #expect(
            try set("s1").elements.map(\.key) == [
                [.address(IPPrefix(host: IPAddress("198.18.0.1")!))],
                [.address(IPPrefix(host: IPAddress("198.18.0.2")!))],
            ])
        let interval = try set("s2")
        #expect(interval.interval)
        // 198.18.5.1-198.18.5.9 is no prefix: it becomes the prefixes that cover it exactly.
        let covering = ["198.18.0.0/24", "198.18.5.1/32", "198.18.5.2/31", "198.18.5.4/30", "198.18.5.8/31"].map {
            [SetValue.address(try! IPPrefix.parse(Substring($0)).get())]
        }
        #expect(interval.elements.map(\.key) == covering)
        #expect(try set("s4").keyTypes == [.ipv4Address, .transport, .service])
        #expect(
            try set("s4").elements.first?.key == [
                .address(IPPrefix(address: IPAddress("198.18.0.0")!, length: 24)), .transport(.tcp),
                .ports(PortRange(80, 90)),
            ])
        let verdicts = try set("m1")
        #expect(verdicts.mapValue == .verdict)
        #expect(verdicts.elements.map(\.value) == [.verdict(.jump("c1")), .verdict(.drop)])
        let data = try set("m2")
        #expect(data.mapValue == .data([.ipv4Address, .service]))
        #expect(
            data.elements.first?.value
                == .data([.address(IPPrefix(host: IPAddress("198.18.1.2")!)), .ports(PortRange(8080))]))

        let rules = try #require(portal.chain("filt")?.rules)
        #expect(rules[0].action == .verdictMap(keys: [.inputInterface], map: "m1"))
        #expect(rules[1].matches == [.inSet(keys: [.sourceAddress], set: "s1")] && rules[1].comment?.text == "hello")
        #expect(rules[2].matches == [.transport(.tcp), .inSet(keys: [.sourceAddress, .destinationPort], set: "s3")])
        #expect(rules[3].matches == [.inSet(keys: [.destinationAddress, .transport, .destinationPort], set: "s4")])
        #expect(rules[4].matches == [.inSet(keys: [.sourceAddress], set: "s2", negated: true)])
        // Anonymous sets and maps are kept as written.
        #expect(
            rules[6].matches.count == 1 && rules[6].matches.allSatisfy { if case .opaque = $0 { true } else { false } })
        if case .opaque(let text)? = rules[8].action {
            #expect(text.contains("vmap"))
        } else {
            Issue.record("anonymous vmap")
        }
        let nat = try #require(portal.chain("natpre")?.rules)
        #expect(
            nat[1].action == .dnatMap(.ipv4, keys: [.destinationPort], addressMap: "m3", portMap: nil)
                || { if case .opaque = nat[1].action { true } else { false } }())
        #expect(read.warnings.contains { $0.message.contains("named counter object not read") })
    }

    /// Everything the reader models renders back to nft JSON that reads back to the same IR.
    @Test func modelledPartsReadBackIdentically() throws {
        let text = Repo.read(Repo.fixtures + "/nft/iptables-nft-docker-and-sets.json")
        var ruleset = try NftJSONReader().read(text).ruleset
        for t in ruleset.tables.indices {
            for c in ruleset.tables[t].chains.indices {
                ruleset.tables[t].chains[c].rules.removeAll { rule in
                    rule.matches.contains { if case .opaque = $0 { true } else { false } }
                        || { if case .opaque = rule.action { true } else { false } }()
                }
            }
        }
        let rendered = try NftJSONRenderer().render(ruleset)[0].text
        let again = try NftJSONReader().read(rendered)
        #expect(again.warnings.isEmpty, "\(again.warnings)")
        func stripped(_ r: Ruleset) -> Ruleset {
            var r = r
            for t in r.tables.indices {
                for c in r.tables[t].chains.indices {
                    for i in r.tables[t].chains[c].rules.indices { r.tables[t].chains[c].rules[i].provenance = nil }
                }
            }
            return r
        }
        #expect(stripped(again.ruleset) == stripped(ruleset))
    }

    @Test func docker2010CaptureBecomesIR() throws {
        let text = Self.texts.first { $0.0 == "docker-20.10/s02-one-publish.rules" }!.1
        let (ruleset, _) = try IptablesSaveReader().read(text)
        let nat = try #require(ruleset.table(.ip, "nat"))
        let dnat = try #require(nat.chain("DOCKER")?.rules.last)
        #expect(dnat.action == .dnat(IPAddress("172.17.0.2")!, PortRange(80)))
        #expect(dnat.matches.contains(.interface(.source, "docker0", negated: true)))
        #expect(nat.chain("PREROUTING")?.base?.priority == -100)
        #expect(ruleset.table(.ip, "filter")?.chain("FORWARD")?.base?.policy == .drop)
        #expect(dnat.provenance?.line == 33)
    }

    @Test func unmodelledMatchesAndTargetsAreKeptVerbatim() throws {
        let text = """
            *mangle
            :PREROUTING ACCEPT [0:0]
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :POSTROUTING ACCEPT [0:0]
            -A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
            -A FORWARD -p icmp -m physdev --physdev-in veth0 -m comment --comment "from ufw: allow" -j ACCEPT
            -A FORWARD -m state --state NEW -j LOG --log-prefix "x " --log-level 4
            COMMIT

            """
        let (ruleset, warnings) = try IptablesSaveReader().read(text)
        // `-p icmp` is modelled (Docker writes it for routed networks); physdev is not.
        #expect(warnings.map(\.line).sorted() == [7, 7, 8, 9, 9])
        let rendered = try IptablesRenderer().render(ruleset)[0].text
        #expect(rendered == text, "\(rendered)")
    }

    @Test(arguments: [
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n", "has no COMMIT"),
        ("-A INPUT -j ACCEPT\n", "outside a table"),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A NOPE -j ACCEPT\nCOMMIT\n", "undeclared chain NOPE"),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"open\nCOMMIT\n", "unterminated quoted string"),
        ("*filter\n:INPUT MAYBE [0:0]\nCOMMIT\n", "unknown policy"),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 300.1.1.1 -j ACCEPT\nCOMMIT\n", "is not an address"),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT --frobnicate\nCOMMIT\n", "unexpected '--frobnicate'"),
        ("*filter\n*nat\nCOMMIT\n", "starts before COMMIT"),
    ])
    func malformedInputIsAnErrorWithItsLine(_ text: String, _ message: String) {
        #expect {
            _ = try IptablesSaveReader().read(text)
        } throws: { error in
            (error as? ReadError).map { $0.message.contains(message) && $0.line >= 1 } ?? false
        }
    }

    /// Damaged JSON documents never crash the reader: each is read or rejected with a message.
    @Test func damagedJSONNeverCrashes() {
        var generator = SeededGenerator(seed: 0xBEEF)
        let samples =
            Self.jsonGoldens.prefix(6).map { Repo.read(Repo.golden + "/" + $0) } + [
                Repo.read(Repo.fixtures + "/nft/iptables-nft-docker-and-sets.json")
            ]
        let swaps = [
            ("\"ip\"", "\"ip9\""), ("\"accept\"", "\"nope\""), ("[", "{"), (": 0", ": \"x\""), ("\"jump\"", "\"goto\""),
        ]
        for _ in 0..<300 {
            var text = samples.randomElement(using: &generator)!
            switch Int.random(in: 0..<3, using: &generator) {
            case 0: text = String(text.prefix(Int.random(in: 0..<text.count, using: &generator)))
            case 1:
                let (from, to) = swaps.randomElement(using: &generator)!
                if let range = text.ranges(of: from).randomElement(using: &generator) {
                    text.replaceSubrange(range, with: to)
                }
            default:
                let index = text.index(text.startIndex, offsetBy: Int.random(in: 0..<text.count, using: &generator))
                text.remove(at: index)
            }
            do {
                _ = try NftJSONReader().read(text)
            } catch {
                #expect(!error.message.isEmpty)
            }
        }
    }

    /// Damaged captures never crash the reader: each is read or rejected with a line.
    @Test func damagedInputNeverCrashes() {
        var generator = SeededGenerator(seed: 0xFEED)
        let samples = Self.texts.map(\.1)
        for _ in 0..<400 {
            var lines = samples.randomElement(using: &generator)!.split(
                separator: "\n", omittingEmptySubsequences: false
            )
            .map(String.init)
            let index = Int.random(in: 0..<lines.count, using: &generator)
            switch Int.random(in: 0..<4, using: &generator) {
            case 0: lines.removeSubrange(index...)
            case 1: lines.remove(at: index)
            case 2: lines[index] = String(lines[index].shuffled(using: &generator))
            default: lines.insert("-A \(["FORWARD", "X", "\"", "-j"].randomElement(using: &generator)!) -j", at: index)
            }
            do {
                _ = try IptablesSaveReader().read(lines.joined(separator: "\n"))
            } catch {
                #expect(error.line >= 1)
            }
        }
    }
}

/// The kernel's word on reading nft JSON: every nftables capture and dump in the test data
/// (Docker 20.10's iptables-nft tables, Docker 29's own tables) loaded in a fresh namespace and
/// listed as JSON reads without a warning, and what the reader wrote back loads in another
/// namespace to the very same ruleset.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct ReaderKernelTests {
    static var dumps: [String] {
        let manager = FileManager.default
        let captures = ((try? manager.contentsOfDirectory(atPath: Repo.fixtures + "/docker-20.10")) ?? [])
            .filter { $0.hasSuffix(".nft") }.sorted().map { "docker-20.10/" + $0 }
        return captures + Docker29NftablesTests.scenarios.map { "docker-29-nftables/\($0).nft" }
    }

    static func text(_ dump: String) -> String {
        if dump.hasPrefix("docker-29-nftables/") {
            return Docker29NftablesTests.expected(String(dump.dropFirst("docker-29-nftables/".count).dropLast(4)))
        }
        return Repo.read(Repo.fixtures + "/" + dump)
    }

    @Test(arguments: dumps)
    func listedJSONReadsBackToTheSameRuleset(_ dump: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let namespace = try TestNamespace()
        let (applied, listing) = try namespace.nftApplyAndList(Self.text(dump))
        try #require(applied.succeeded, "\(applied.error)")
        let json = namespace.exec(["nft", "-j", "list", "ruleset"])
        try #require(json.status == 0, "\(json.stderr)")
        let read = try NftJSONReader(source: dump).read(json.stdout)
        #expect(read.warnings.isEmpty, "\(read.warnings)")
        let written = try NftJSONRenderer().render(read.ruleset)[0].text
        let other = try TestNamespace()
        let (again, listingAgain) = try other.nftApplyAndList(written)
        #expect(again.succeeded, "\(again.error)")
        #expect(
            listingAgain == listing,
            "\(UnifiedDiff.make(old: listing, new: listingAgain, oldName: dump, newName: "read and written") ?? "")")
    }
}
