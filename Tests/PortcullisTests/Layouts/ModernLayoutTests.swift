import Foundation
import PortcullisCompiler
import PortcullisLayouts
import PortcullisPolicy
import PortcullisSyntax
import Testing

/// A layout's VERBATIM scenarios (moby's generated iptables docs, converted to iptables-save
/// form): a policy and the expected tables per scenario, in Fixtures/<layout>.
struct VerbatimFixtures: Sendable, CustomTestStringConvertible {
    let layout: String
    /// The scenario with a user network and a published port, and the loopback-publish one.
    let portmap: String
    let loopback: String

    var testDescription: String { layout }
    var directory: String { Repo.fixtures + "/" + layout }

    var scenarios: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".policy") }
            .sorted()
            .map { String($0.dropLast(".policy".count)) }
    }

    func compile(_ scenario: String) throws -> String {
        let files = try Compiler().compile("\(directory)/\(scenario).policy", layout: layout, backend: "iptables").get()
        #expect(files.count == 1)
        return files[0].text
    }

    /// iptables-save text split per table (`*name` ... `COMMIT`), `#` lines dropped.
    static func tables(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        var current: (name: String, lines: [String])?
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            if line.hasPrefix("*") { current = (String(line.dropFirst()), []) }
            current?.lines.append(String(line))
            if line == "COMMIT", let table = current {
                result[table.name] = table.lines.joined(separator: "\n") + "\n"
                current = nil
            }
        }
        return result
    }

    static let docker28 = VerbatimFixtures(
        layout: "docker-28", portmap: "s53-usernet-portmap", loopback: "s54-usernet-portmap-lo")
    static let docker29 = VerbatimFixtures(
        layout: "docker-29", portmap: "s62-usernet-portmap", loopback: "s63-usernet-portmap-lo")
}

/// What the docker-28 and docker-29 layouts share (DockerModernRules), checked on both.
@Suite struct ModernLayoutTests {
    static let all = [VerbatimFixtures.docker28, .docker29]

    /// Tables come out in iptables-nft-save's order: mangle, raw, filter, nat.
    @Test(arguments: all)
    func tablesAreInSaveOrder(_ fixtures: VerbatimFixtures) throws {
        let text = try fixtures.compile(fixtures.loopback)
        let names = text.split(separator: "\n").filter { $0.hasPrefix("*") }
        #expect(names == ["*raw", "*filter", "*nat"])
    }

    /// Since 28.2.2 (and in 29) DOCKER-USER is created empty; the policy's own rules are its whole content.
    @Test(arguments: all)
    func userRulesAreTheWholeUserChain(_ fixtures: VerbatimFixtures) throws {
        let base = Repo.read("\(fixtures.directory)/\(fixtures.portmap).policy")
        let empty = try compileInline(base, layout: fixtures.layout).get()
        #expect(rules(empty, chain: "DOCKER-USER").isEmpty)
        let text = try compileInline(
            base + "\ncontainer c2 {\n    attach bridge1 192.0.2.3\n}\ndeny c2 -> c1 port 80/tcp\n",
            layout: fixtures.layout
        ).get()
        #expect(
            rules(text, chain: "DOCKER-USER") == [
                "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"portcullis: replies to accepted connections\" -j ACCEPT",
                "-A DOCKER-USER -s 192.0.2.3/32 -d 192.0.2.2/32 -i bridge1 -o bridge1 -p tcp -m tcp --dport 80 -m comment --comment \"portcullis: deny c2 -> c1 port 80/tcp\" -j DROP",
            ])
        // Every container address on a non-internal network gets its raw direct-access drop.
        #expect(
            rules(text, chain: "PREROUTING").filter { $0.contains("! -i bridge1") } == [
                "-A PREROUTING -d 192.0.2.2/32 ! -i bridge1 -j DROP",
                "-A PREROUTING -d 192.0.2.3/32 ! -i bridge1 -j DROP",
            ])
    }

    /// Several bindings: each per-port ACCEPT is inserted at the head of DOCKER (so they end up
    /// in reverse binding order, above the bridge's DROP); DNATs are appended.
    @Test(arguments: all)
    func perPortAcceptsAreInsertedAboveTheBridgeDrop(_ fixtures: VerbatimFixtures) throws {
        let text = try compileInline(
            """
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
            }
            container web {
                attach bridge 172.17.0.2
                publish 8443 -> 443/tcp
                publish 8080 -> 80/tcp
                publish 5353 -> 53/udp
            }

            """, layout: fixtures.layout
        ).get()
        #expect(
            rules(text, chain: "DOCKER").filter { $0.contains("-j ACCEPT") || $0.contains("-j DROP") } == [
                "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p udp -m udp --dport 53 -j ACCEPT",
                "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
                "-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 443 -j ACCEPT",
                "-A DOCKER ! -i docker0 -o docker0 -j DROP",
            ])
        #expect(
            rules(text, chain: "DOCKER").filter { $0.contains("DNAT") } == [
                "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8443 -j DNAT --to-destination 172.17.0.2:443",
                "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
                "-A DOCKER ! -i docker0 -p udp -m udp --dport 5353 -j DNAT --to-destination 172.17.0.2:53",
            ])
    }

    /// Docker 28 and 29 write ip6tables rules for IPv6 networks: an IPv6 publish on `::1` gets
    /// its DNAT (link-local sources excepted) but no raw drop, since `::1` is not routable; the
    /// policy's IPv6 rules go to ip6 DOCKER-USER, and an allow across bridges gets its raw
    /// exception there too.
    @Test(arguments: all)
    func writesIp6tablesForIPv6Networks(_ fixtures: VerbatimFixtures) throws {
        let policy = """
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
                subnet fd00:17::/64
            }
            network other {
                bridge br-other
                subnet 198.18.9.0/24
                subnet fd00:9::/64
            }
            container web {
                attach bridge 172.17.0.2
                attach bridge fd00:17::2
                publish [::1]:8080 -> 80/tcp
            }
            container client {
                attach other 198.18.9.2
                attach other fd00:9::2
            }
            allow client -> web port 80/tcp

            """
        let (loaded, diagnostics) = PolicyLoader.load("inline.policy") { _ in policy }
        #expect(diagnostics.isEmpty)
        let checked = try Checker.check(loaded).get()
        let files = try Compiler().render(
            checked, sources: loaded.sources, layout: Layouts.named(fixtures.layout)!, backend: .iptables
        ).get()
        #expect(files.map(\.fileExtension) == ["iptables", "ip6tables"])
        let v4 = files[0].text
        let v6 = files[1].text
        // The IPv4 file has no IPv6 address, and the loopback publish is IPv6 only.
        #expect(!v4.contains("fd00:"))
        #expect(!v4.contains("8080"))
        #expect(
            rules(v6, chain: "DOCKER").filter { $0.contains("DNAT") } == [
                "-A DOCKER ! -s fe80::/10 -d ::1/128 ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:17::2]:80"
            ])
        #expect(
            rules(v6, chain: "PREROUTING").filter { $0.contains("-j DROP") } == [
                "-A PREROUTING -d fd00:17::2/128 ! -i docker0 -j DROP",
                "-A PREROUTING -d fd00:9::2/128 ! -i br-other -j DROP",
            ])
        #expect(
            rules(v6, chain: "PREROUTING").filter { $0.contains("-j ACCEPT") } == [
                "-A PREROUTING -s fd00:9::2/128 -d fd00:17::2/128 -i br-other -p tcp -m tcp --dport 80 -m comment --comment \"portcullis: allow client -> web port 80/tcp\" -j ACCEPT",
                "-A PREROUTING -s fd00:17::2/128 -d fd00:9::2/128 -i docker0 -p tcp -m tcp --sport 80 -m comment --comment \"portcullis: allow client -> web port 80/tcp\" -j ACCEPT",
            ])
        #expect(
            rules(v6, chain: "DOCKER-USER") == [
                "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"portcullis: replies to accepted connections\" -j ACCEPT",
                "-A DOCKER-USER -s fd00:9::2/128 -d fd00:17::2/128 -i br-other -o docker0 -p tcp -m tcp --dport 80 -m comment --comment \"portcullis: allow client -> web port 80/tcp\" -j ACCEPT",
            ])
        #expect(rules(v6, chain: "OUTPUT") == ["-A OUTPUT ! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER"])
    }

    /// A policy without IPv6 subnets compiles to one iptables file, as before.
    @Test(arguments: all)
    func noIp6tablesWithoutIPv6Networks(_ fixtures: VerbatimFixtures) throws {
        let (loaded, _) = PolicyLoader.load("\(fixtures.directory)/\(fixtures.portmap).policy")
        let checked = try Checker.check(loaded).get()
        let files = try Compiler().render(
            checked, sources: loaded.sources, layout: Layouts.named(fixtures.layout)!, backend: .iptables
        ).get()
        #expect(files.map(\.fileExtension) == ["iptables"])
    }
}

/// The kernel's verdict: every scenario's compiled ruleset loads with iptables-restore in a
/// fresh namespace and reads back byte for byte with iptables-save.
@Suite(.enabled(if: Kernel.enabled, Kernel.reason), .serialized)
struct ModernLayoutKernelTests {
    static let cases = ModernLayoutTests.all.flatMap { fixtures in fixtures.scenarios.map { (fixtures, $0) } }

    @Test(arguments: cases)
    func loadsAndSavesIdentically(_ fixtures: VerbatimFixtures, _ scenario: String) throws {
        try #require(Kernel.isRoot, "CI must run this test as root")
        let text = try fixtures.compile(scenario)
        let namespace = try TestNamespace()
        let load = namespace.exec(["iptables-restore"], input: text)
        try #require(load.status == 0, "iptables-restore: \(load.stderr)")
        #expect(namespace.savedIptables() == text)
    }
}
