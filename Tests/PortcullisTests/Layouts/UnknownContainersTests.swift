import Foundation
import Testing

/// `unknown-containers drop`: the rules each layout writes for it, below the policy's own, and
/// nothing when it is not set.
struct UnknownContainersTests {
    static func policy(_ setting: String) -> String {
        """
        host {
            \(setting)
        }
        network front {
            bridge br-front
            subnet 198.18.1.0/24
        }
        network back {
            bridge br-back
            subnet 198.18.2.0/24
            gateway 198.18.2.254
        }
        container web {
            attach front 198.18.1.10
        }
        container api {
            attach back 198.18.2.10
        }
        egress web -> 198.18.200.0/24 port 443/tcp

        """
    }

    func compile(_ setting: String, layout: String, backend: String) throws -> String {
        let path = NSTemporaryDirectory() + "pc-unknown-\(getpid())-\(UUID().uuidString.prefix(8)).policy"
        try Self.policy(setting).write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = compiledRuleset(path, layout: layout, backend: backend)
        try #require(result.status == 0, "\(result.stderr)")
        return result.stdout
    }

    static let comment = "portcullis: unknown-containers drop"

    /// iptables: per bridge a RETURN for each known address (containers, then the gateway) and a
    /// drop of the rest of the subnet; sources first, then destinations; after the egress drop,
    /// before Docker's RETURN.
    @Test(arguments: ["docker-20.10", "docker-28", "docker-29"])
    func iptablesReturnsKnownAddressesThenDropsTheSubnet(_ layout: String) throws {
        let text = try compile("unknown-containers drop", layout: layout, backend: "iptables")
        let chain = "DOCKER-USER"
        let rules = text.split(separator: "\n").filter { $0.hasPrefix("-A \(chain) ") }.map {
            $0.dropFirst("-A \(chain) ".count)
        }
        let known = { (who: String, network: String) in
            "-m comment --comment \"\(Self.comment): \(who) is known on \(network)\" -j RETURN"
        }
        let expected = [
            "-s 198.18.1.10/32 -i br-front \(known("web", "front"))",
            "-s 198.18.1.1/32 -i br-front \(known("the gateway", "front"))",
            "-s 198.18.1.0/24 -i br-front -m comment --comment \"\(Self.comment): from addresses on front the rules do not know\" -j DROP",
            "-s 198.18.2.10/32 -i br-back \(known("api", "back"))",
            "-s 198.18.2.254/32 -i br-back \(known("the gateway", "back"))",
            "-s 198.18.2.0/24 -i br-back -m comment --comment \"\(Self.comment): from addresses on back the rules do not know\" -j DROP",
            "-d 198.18.1.10/32 -o br-front \(known("web", "front"))",
            "-d 198.18.1.1/32 -o br-front \(known("the gateway", "front"))",
            "-d 198.18.1.0/24 -o br-front -m comment --comment \"\(Self.comment): to addresses on front the rules do not know\" -j DROP",
            "-d 198.18.2.10/32 -o br-back \(known("api", "back"))",
            "-d 198.18.2.254/32 -o br-back \(known("the gateway", "back"))",
            "-d 198.18.2.0/24 -o br-back -m comment --comment \"\(Self.comment): to addresses on back the rules do not know\" -j DROP",
        ]
        let unknown = rules.filter { $0.contains(Self.comment) }.map(String.init)
        #expect(unknown == expected, "\(layout):\n\(unknown.joined(separator: "\n"))")
        // Below the policy's own rules: after the egress drop, before Docker's RETURN if any.
        let egressDrop = try #require(rules.firstIndex { $0.contains("other egress of web") })
        let first = try #require(rules.firstIndex { $0.contains(Self.comment) })
        #expect(egressDrop < first)
        #expect(rules.suffix(from: first).allSatisfy { $0.contains(Self.comment) || $0 == "-j RETURN" })
    }

    /// nftables: a set of the known addresses in portcullis-user, one drop per bridge and direction.
    @Test func docker29NftablesLooksUpASet() throws {
        let text = try compile("unknown-containers drop", layout: "docker-29", backend: "nftables")
        #expect(text.contains("set known-addresses {\n\t\ttype ipv4_addr\n"), "\(text)")
        let elements = ["198.18.1.10", "198.18.1.1", "198.18.2.10", "198.18.2.254"]
        let set = try #require(
            text.components(separatedBy: "set known-addresses {").last?.components(separatedBy: "}").first)
        #expect(
            elements.allSatisfy { set.contains($0 + ",") || set.contains($0 + " ") || set.contains($0 + "\n") },
            "\(set)")
        let drops = text.split(separator: "\n").filter { $0.contains(Self.comment) }.map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        #expect(
            drops == [
                "iifname \"br-front\" ip saddr 198.18.1.0/24 ip saddr != @known-addresses drop comment \"\(Self.comment): from addresses on front the rules do not know\"",
                "iifname \"br-back\" ip saddr 198.18.2.0/24 ip saddr != @known-addresses drop comment \"\(Self.comment): from addresses on back the rules do not know\"",
                "oifname \"br-front\" ip daddr 198.18.1.0/24 ip daddr != @known-addresses drop comment \"\(Self.comment): to addresses on front the rules do not know\"",
                "oifname \"br-back\" ip daddr 198.18.2.0/24 ip daddr != @known-addresses drop comment \"\(Self.comment): to addresses on back the rules do not know\"",
            ], "\(drops)")
    }

    /// native: a set per family, a drop before the published ports' accept and two after egress;
    /// the rules do not depend on the containers (only the set's elements do).
    @Test func nativeLooksUpASetPerFamily() throws {
        let text = try compile("unknown-containers drop", layout: "native", backend: "nftables")
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.contains("set known-v4 {"), "\(text)")
        let drops = lines.filter { $0.contains(Self.comment) }
        #expect(
            drops == [
                "iifname != @bridges ip daddr @subnets-v4 ip daddr != @known-v4 drop comment \"\(Self.comment): published ports of addresses the rules do not know\"",
                "ip saddr @subnets-v4 ip saddr != @known-v4 drop comment \"\(Self.comment): from addresses the rules do not know\"",
                "ip daddr @subnets-v4 ip daddr != @known-v4 drop comment \"\(Self.comment): to addresses the rules do not know\"",
            ], "\(drops)")
        let published = try #require(lines.firstIndex { $0.hasSuffix("comment \"portcullis: published ports\"") })
        let fromOutside = try #require(lines.firstIndex { $0 == drops[0] })
        #expect(fromOutside < published)
        let otherEgress = try #require(lines.firstIndex { $0.contains("other egress") })
        #expect(otherEgress < lines.firstIndex { $0 == drops[1] }!)
    }

    /// `allow` (the default) writes what the layouts wrote before the setting existed.
    @Test(arguments: [("docker-20.10", "iptables"), ("docker-29", "nftables"), ("native", "nftables")])
    func allowWritesNothing(_ layout: String, _ backend: String) throws {
        let allow = try compile("unknown-containers allow", layout: layout, backend: backend)
        #expect(!allow.contains("unknown-containers") && !allow.contains("known"))
        #expect(allow == (try compile("", layout: layout, backend: backend)))
    }

    @Test func logAndCountDropsApply() throws {
        let text = try compile(
            "unknown-containers drop\n    log-drops prefix \"pc: \"", layout: "docker-20.10", backend: "iptables")
        #expect(
            text.contains(
                "-A DOCKER-USER -s 198.18.1.0/24 -i br-front -m limit --limit 10/min -m comment --comment \"\(Self.comment): from addresses on front the rules do not know\" -j LOG --log-prefix \"pc: \""
            ), "\(text)")
    }

    @Test func otherValuesAreErrors() throws {
        let path = NSTemporaryDirectory() + "pc-unknown-bad-\(getpid()).policy"
        try Self.policy("unknown-containers deny").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = compiledRuleset(path)
        #expect(
            result.status == 2 && result.stderr.contains("expected 'drop' or 'allow', found 'deny'"), "\(result.stderr)"
        )
    }
}
