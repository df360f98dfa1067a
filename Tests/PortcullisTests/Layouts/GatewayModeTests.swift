import Foundation
import PortcullisCompiler
import PortcullisLayouts
import PortcullisPolicy
import PortcullisRender
import PortcullisSyntax
import Testing

/// Compiles an in-memory policy with the iptables backend; every file it gives.
func compileInlineFiles(_ text: String, layout: String) throws -> [RenderedFile] {
    let (loaded, diagnostics) = PolicyLoader.load("inline.policy") { _ in text }
    try #require(diagnostics.isEmpty)
    let policy = try Checker.check(loaded).get()
    return try Compiler().render(policy, sources: loaded.sources, layout: Layouts.named(layout)!, backend: .iptables)
        .get()
}

/// `gateway-mode routed | nat-unprotected` (Docker's `com.docker.network.bridge.gateway_mode_ipv4`)
/// against the VERBATIM dumps of docker-rules.md 5.8 (Docker 28) and 6.7 (Docker 29 on iptables),
/// converted to iptables-save form in Fixtures/docker-28-gateway-modes and
/// docker-29-gateway-modes. (7.6 and 7.7, Docker 29's nftables firewaller, are among the
/// Docker29NftablesTests scenarios; the 6.9 nat-unprotected unit golden among
/// ModernUnitGoldenTests'.)
@Suite struct GatewayModeTests {
    struct Scenario: Sendable, CustomTestStringConvertible {
        let layout: String
        let name: String
        var testDescription: String { "\(layout) \(name)" }
        var path: String { Repo.fixtures + "/" + layout + "-gateway-modes/" + name }
    }

    static let scenarios: [Scenario] = [
        Scenario(layout: "docker-28", name: "s58-usernet-portmap-routed"),
        Scenario(layout: "docker-28", name: "s58-usernet-portmap-natunprot"),
        Scenario(layout: "docker-29", name: "s67-usernet-portmap-routed"),
        Scenario(layout: "docker-29", name: "s67-usernet-portmap-natunprot"),
    ]

    static func compile(_ scenario: Scenario) throws -> String {
        let files = try Compiler().compile(scenario.path + ".policy", layout: scenario.layout, backend: "iptables")
            .get()
        #expect(files.count == 1)
        return files[0].text
    }

    @Test(arguments: scenarios)
    func compilesToTheVerbatimTables(_ scenario: Scenario) throws {
        let actual = VerbatimFixtures.tables(try Self.compile(scenario))
        let expected = VerbatimFixtures.tables(Repo.read(scenario.path + ".rules"))
        #expect(expected["filter"] != nil && expected["nat"] != nil)
        for (name, text) in expected.sorted(by: { $0.key < $1.key }) {
            let compiled = actual[name] ?? ""
            #expect(
                compiled == text,
                "\(name): \(UnifiedDiff.make(old: text, new: compiled, oldName: "docker", newName: "compiled") ?? "")")
        }
        // The docs do not print raw: neither mode writes direct-access drops for bridge1's
        // container, and routed mode no loopback drop either, so only docker0's would be there.
        #expect(Set(actual.keys).subtracting(expected.keys).subtracting(["raw"]).isEmpty)
        #expect(!(actual["raw"] ?? "").contains("192.0.2.2"))
    }

    /// Routed mode maps no host port: a loopback publish gets neither its DNAT nor its raw drop,
    /// and a daemon-chosen port none at all; the container ports are still opened (each ACCEPT
    /// inserted on top, so the later binding, the daemon-chosen one, comes first).
    @Test(arguments: ["docker-28", "docker-29"])
    func routedModeMapsNoHostPort(_ layout: String) throws {
        let text = try compileInline(
            """
            network routed {
                bridge br-routed
                subnet 198.18.7.0/24
                gateway-mode routed
            }
            container web {
                attach routed 198.18.7.2
                publish 127.0.0.1:8080 -> 80/tcp
                publish 443/tcp
            }

            """, layout: layout
        ).get()
        #expect(!text.contains("DNAT") && !text.contains("127.0.0.1/32") && !text.contains("MASQUERADE"))
        #expect(
            rules(text, chain: "DOCKER").filter { $0.contains("198.18.7.2") } == [
                "-A DOCKER -d 198.18.7.2/32 ! -i br-routed -o br-routed -p tcp -m tcp --dport 443 -j ACCEPT",
                "-A DOCKER -d 198.18.7.2/32 ! -i br-routed -o br-routed -p tcp -m tcp --dport 80 -j ACCEPT",
            ])
    }

    /// Gateway modes are IPv4's: a dual-stack routed network keeps NAT, its drops and its
    /// masquerading on the IPv6 side.
    @Test(arguments: ["docker-28", "docker-29"])
    func ipv6StaysNat(_ layout: String) throws {
        let files = try compileInlineFiles(
            """
            network routed {
                bridge br-routed
                subnet 198.18.7.0/24
                subnet fd00:7::/64
                gateway-mode routed
            }
            container web {
                attach routed 198.18.7.2
                attach routed fd00:7::2
                publish 8080 -> 80/tcp
            }

            """, layout: layout)
        #expect(files.map(\.fileExtension) == ["iptables", "ip6tables"])
        #expect(!files[0].text.contains("DNAT") && !files[0].text.contains("-s 198.18.7.0/24"))
        #expect(files[0].text.contains("-A DOCKER -o br-routed -p icmp -j ACCEPT"))
        let v6 = files[1].text
        #expect(v6.contains("-A PREROUTING -d fd00:7::2/128 ! -i br-routed -j DROP"))
        #expect(v6.contains("-A POSTROUTING -s fd00:7::/64 ! -o br-routed -j MASQUERADE"))
        #expect(v6.contains("-j DNAT --to-destination [fd00:7::2]:80"))
        #expect(!v6.contains("icmp"))
    }

    static let routedPolicy = """
        network bridge1 {
            bridge bridge1
            subnet 192.0.2.0/24
            gateway-mode routed
        }

        """

    /// Layouts whose Docker has no gateway modes refuse them at the `gateway-mode` line; the
    /// native layout through the shared check in `Layouts`.
    @Test(arguments: ["docker-1.5", "docker-20.10", "native"])
    func otherLayoutsRefuseGatewayModes(_ layout: String) throws {
        let backend: Backend = layout == "native" ? .nftables : .iptables
        guard
            case .failure(.diagnostics(let diagnostics, _)) = compileInline(
                Self.routedPolicy, layout: layout, backend: backend)
        else {
            Issue.record("gateway-mode routed compiled with \(layout)")
            return
        }
        #expect(
            diagnostics.map(\.message) == ["layout \(layout) cannot express gateway-mode routed (network 'bridge1')"])
        #expect(diagnostics.first?.range.start.line == 4)
        #expect(diagnostics.first?.hint?.contains("docker-28 and docker-29") == true)
    }

    @Test func nftablesBackendOfDocker29WritesRoutedMode() throws {
        let text = try compileInline(Self.routedPolicy, layout: "docker-29", backend: .nftables).get()
        #expect(text.contains("ip protocol icmp counter accept comment \"ICMP\""))
    }
}

/// The kernel's verdict: each scenario's compiled ruleset (with its ICMP accept) loads with
/// iptables-restore in a fresh namespace and reads back byte for byte with iptables-save.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct GatewayModeKernelTests {
    @Test(arguments: GatewayModeTests.scenarios)
    func loadsAndSavesIdentically(_ scenario: GatewayModeTests.Scenario) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let text = try GatewayModeTests.compile(scenario)
        let namespace = try TestNamespace()
        let load = namespace.exec(["iptables-restore"], input: text)
        try #require(load.status == 0, "iptables-restore: \(load.stderr)")
        #expect(namespace.savedIptables() == text)
    }
}
