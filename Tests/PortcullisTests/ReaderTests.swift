import Foundation
import PortcullisIR
import PortcullisNet
import PortcullisReaders
import PortcullisRender
import Testing

/// Reading iptables-save output back into the IR: render(read(X)) == X for every golden file and
/// every real-Docker capture; what is not modelled is kept verbatim with a warning; malformed
/// input is an error with its line, never a crash and never a partial read.
@Suite struct ReaderTests {
    /// Every iptables text the repository holds: golden files and the IPv4/IPv6 parts of captures.
    static var texts: [(String, String)] {
        var result: [(String, String)] = []
        let manager = FileManager.default
        for folder in ((try? manager.contentsOfDirectory(atPath: Repo.golden)) ?? []).sorted() {
            for file in ((try? manager.contentsOfDirectory(atPath: Repo.golden + "/" + folder)) ?? []).sorted()
            where file.hasSuffix(".iptables") {
                result.append(("golden/\(folder)/\(file)", Repo.read(Repo.golden + "/\(folder)/\(file)")))
            }
        }
        for folder in ((try? manager.contentsOfDirectory(atPath: Repo.fixtures)) ?? []).sorted() {
            for file in ((try? manager.contentsOfDirectory(atPath: Repo.fixtures + "/" + folder)) ?? []).sorted()
            where file.hasSuffix(".rules") {
                let parts = Repo.read(Repo.fixtures + "/\(folder)/\(file)").components(separatedBy: "#### ip6tables")
                for (index, part) in parts.enumerated() {
                    let lines = part.split(separator: "\n").filter { !$0.hasPrefix("#") }
                    if lines.isEmpty { continue }
                    result.append(
                        ("\(folder)/\(file)\(index == 0 ? "" : " (IPv6)")", lines.joined(separator: "\n") + "\n"))
                }
            }
        }
        return result
    }

    @Test func thereIsMuchToRead() {
        #expect(Self.texts.count >= 30)
    }

    @Test(arguments: texts.map(\.0))
    func rendersBackIdentically(_ name: String) throws {
        let text = try #require(Self.texts.first { $0.0 == name }?.1)
        let (ruleset, warnings) = try IptablesSaveReader(source: name).read(text)
        #expect(warnings.isEmpty, "\(warnings)")
        let rendered = try IptablesRenderer().render(ruleset)[0].text
        #expect(rendered == text)
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
        let ruleset = try NftJSONReader(source: golden).read(text)
        #expect(try NftJSONRenderer().render(ruleset)[0].text == text)
        // And the IR is the one the iptables text gives, rule for rule.
        let iptables = Repo.read(Repo.golden + "/" + golden.replacingOccurrences(of: ".nft.json", with: ".iptables"))
        if !iptables.isEmpty {
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

    @Test(arguments: [
        ("{\"nftables\": [", "invalid JSON"), ("[]", "expected an object with an 'nftables' array"),
        (
            "{\"nftables\": [{\"rule\": {\"family\": \"ip\", \"table\": \"t\", \"chain\": \"c\", \"expr\": []}}]}",
            "table ip t is not declared"
        ),
        (
            "{\"nftables\": [{\"table\": {\"family\": \"ip\", \"name\": \"t\"}}, {\"chain\": {\"family\": \"ip\", \"table\": \"t\", \"name\": \"c\"}}, {\"rule\": {\"family\": \"ip\", \"table\": \"t\", \"chain\": \"c\", \"expr\": [{\"queue\": {\"num\": 1}}]}}]}",
            "$.nftables[2].rule.expr[0]: expression not modelled"
        ),
    ])
    func malformedJSONIsAnErrorWithItsPath(_ text: String, _ message: String) {
        #expect {
            _ = try NftJSONReader().read(text)
        } throws: { error in
            (error as? ReadError)?.message.contains(message) ?? false
        }
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
        #expect(warnings.map(\.line).sorted() == [7, 7, 8, 8, 9, 9])
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
