import Foundation
import PortcullisCompiler
import PortcullisIR
import PortcullisLayouts
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax
import Testing

/// The native layout's promises that golden files cannot show: its rules do not grow with the
/// host, only its set and map elements do; it exists for nftables only; and its map elements
/// keep the policy statement they stand for.
@Suite struct NativeLayoutTests {
    /// A host with `count` containers on two networks, each publishing two ports, in a group
    /// that a flow and an egress rule name.
    static func host(containers count: Int) -> String {
        var lines = [
            "network front {", "    bridge br-front", "    subnet 10.1.0.0/16", "}",
            "network back {", "    bridge br-back", "    subnet 10.2.0.0/16", "    icc deny", "}",
            "container proxy {", "    attach front 10.1.255.1", "    publish 443 -> 8443/tcp from 203.0.113.0/24", "}",
        ]
        for index in 0..<count {
            let network = index % 2 == 0 ? "front" : "back"
            let address = "10.\(index % 2 == 0 ? 1 : 2).\(index / 250).\(index % 250 + 2)"
            lines += [
                "container app\(index) {", "    attach \(network) \(address)",
                "    publish \(10000 + 2 * index) -> 80/tcp", "    publish \(10001 + 2 * index) -> 53/udp", "}",
            ]
        }
        lines.append("group apps { \((0..<count).map { "app\($0)" }.joined(separator: ", ")) }")
        lines.append("allow proxy -> apps port 80/tcp")
        lines.append("egress apps -> 198.51.100.0/24 port 443/tcp")
        return lines.joined(separator: "\n") + "\n"
    }

    static func lower(_ text: String, layout: String = "native") throws -> Ruleset {
        let (loaded, diagnostics) = PolicyLoader.load("host.policy") { _ in text }
        try #require(diagnostics.isEmpty)
        let policy = try Checker.check(loaded).get()
        return try Layouts.named(layout)!.lower(policy, for: .nftables).get()
    }

    @Test func rulesDoNotGrowWithContainersOrPublishes() throws {
        let small = try Self.lower(Self.host(containers: 4))
        let large = try Self.lower(Self.host(containers: 600))
        func rules(_ ruleset: Ruleset) -> Int { ruleset.tables.flatMap(\.chains).map(\.rules.count).reduce(0, +) }
        func elements(_ ruleset: Ruleset) -> Int { ruleset.tables.flatMap(\.sets).map(\.elements.count).reduce(0, +) }
        #expect(rules(small) == rules(large))
        #expect(elements(large) > elements(small) + 4 * 596)
        // The Docker layouts, for contrast, write rules per published port.
        let docker = try Self.lower(Self.host(containers: 600), layout: "docker-20.10")
        #expect(rules(docker) > 2 * 1200)
    }

    @Test func publishRangesThatKeepTheirPortsAreOneIntervalElement() throws {
        let ruleset = try Self.lower(
            """
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
            }
            container media {
                attach bridge 172.17.0.2
                publish 10000-10999 -> 10000-10999/udp
                publish 8000-8002 -> 9000-9002/tcp
            }
            """)
        let table = try #require(ruleset.tables.first)
        let ranges = try #require(table.sets.first { $0.name == "publish-range-v4" })
        let addresses = try #require(table.sets.first { $0.name == "publish-address-v4" })
        let ports = try #require(table.sets.first { $0.name == "publish-port-v4" })
        let everywhere = SetValue.address(IPPrefix(address: IPAddress("0.0.0.0")!, length: 0))
        #expect(ranges.interval)
        #expect(ranges.elements.map(\.key) == [[everywhere, .transport(.udp), .ports(PortRange(10000, 10999))]])
        // A translated range maps port by port, in hash maps: 8001 goes to 172.17.0.2:9001.
        let key: [SetValue] = [.transport(.tcp), .ports(PortRange(8001))]
        #expect(!addresses.interval && !ports.interval)
        #expect(addresses.element(covering: key)?.value == .data([.address(IPPrefix(host: IPAddress("172.17.0.2")!))]))
        #expect(ports.element(covering: key)?.value == .data([.ports(PortRange(9001))]))
        #expect(addresses.elements.count == 3 && ports.elements.count == 3)
    }

    @Test func nativeIsForNftablesOnly() {
        let result = run([
            CommandLineTests.binary, "compile", Repo.policies + "/web-stack.policy", "--layout", "native", "--backend",
            "iptables",
        ])
        #expect(result.status == 2)
        #expect(result.stderr.contains("layout 'native' is written for nftables only"))
        #expect(result.stderr.contains("--backend nftables or nftables-json"))
    }

    @Test func explainNamesThePublishBehindAMapElement() {
        let result = run([
            CommandLineTests.binary, "explain", Repo.policies + "/web-stack.policy", "--layout", "native", "--backend",
            "nftables", "--from", "outside:203.0.113.5", "--to", "host", "--port", "443/tcp",
        ])
        #expect(result.status == 0)
        #expect(
            result.stdout.hasPrefix(
                "accept: 203.0.113.5 via eth0 -> host 192.0.2.1 port 443/tcp, forwarded to 198.18.1.10:8443"))
        #expect(result.stdout.contains("(element tcp . 443 : 198.18.1.10)"))
        #expect(result.stdout.contains("from publish 443 -> 8443/tcp (container web)"))
    }

    /// Two statements that expand to the same addresses stay two rules in Docker's user chain,
    /// in file order: `iptables -C` compares comments too, so Docker's add-unless-present check
    /// does not merge them (found by the differential check: docker-20.10 inserts the chain
    /// bottom-up and used to keep the later statement's copy).
    @Test func statementsWithTheSamePairsKeepTheirOrderInDockerUser() throws {
        let ruleset = try Self.lower(
            """
            network net0 {
                bridge br-net0
                subnet 198.18.20.0/24
            }
            container a {
                attach net0 198.18.20.10
            }
            container b {
                attach net0 198.18.20.11
            }
            group both { a, b }
            allow a -> b
            deny net0 -> b port 443/tcp
            allow a -> both
            """, layout: "docker-20.10")
        let comments = try #require(ruleset.table(.ip, "filter")?.chain("DOCKER-USER")).rules.compactMap(
            \.comment?.text)
        #expect(
            comments == [
                "portcullis: replies to accepted connections", "portcullis: allow a -> b",
                "portcullis: deny net0 -> b port 443/tcp", "portcullis: allow a -> both",
            ])
    }
}
