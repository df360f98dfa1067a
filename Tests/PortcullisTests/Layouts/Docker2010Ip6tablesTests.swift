import Foundation
import PortcullisCompiler
import PortcullisIR
import PortcullisImport
import PortcullisLayouts
import PortcullisPolicy
import PortcullisReaders
import PortcullisRender
import PortcullisSyntax
import Testing

/// The docker-20.10 layout with the host's `ip6tables on` (Docker 20.10's experimental
/// `--ip6tables`): what the captures s18 to s23 do not show on their own.
@Suite struct Docker2010Ip6tablesTests {
    static let dualStack = """
        host {
            ip6tables on
        }
        network bridge {
            bridge docker0
            subnet 172.17.0.0/16
            subnet fd98:18:17::/64
        }
        network apps {
            bridge br-apps
            subnet 198.18.1.0/24
            subnet fd98:18:1::/64
        }
        container web {
            attach apps 198.18.1.10
            attach apps fd98:18:1::10
            publish 8080 -> 80 from 203.0.113.0/24, 2001:db8::/32
        }
        container client {
            attach bridge 172.17.0.2
            attach bridge fd98:18:17::2
        }

        """

    func files(_ text: String, layout: String = "docker-20.10", backend: Backend = .iptables) throws
        -> [RenderedFile]
    {
        let (loaded, diagnostics) = PolicyLoader.load("inline.policy") { _ in text }
        #expect(diagnostics.isEmpty)
        let checked = try Checker.check(loaded).get()
        return try Compiler().render(checked, sources: loaded.sources, layout: Layouts.named(layout)!, backend: backend)
            .get()
    }

    /// 20.10 has no ip6tables DOCKER-USER; the layout creates it, first in FORWARD, for the
    /// policy's IPv6 rules, in the same order as the IPv4 ones.
    @Test func ipv6RulesGoToADockerUserChainOfTheirOwn() throws {
        let files = try files(Self.dualStack + "allow client -> web port 80/tcp\n")
        #expect(files.map(\.fileExtension) == ["iptables", "ip6tables"])
        let v6 = files[1].text
        #expect(v6.contains(":DOCKER-USER - [0:0]\n"))
        #expect(
            rules(v6, chain: "FORWARD").prefix(2) == [
                "-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
            ])
        let user = rules(v6, chain: "DOCKER-USER")
        #expect(
            user.first
                == "-A DOCKER-USER -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"portcullis: replies to accepted connections\" -j ACCEPT"
        )
        #expect(user.last == "-A DOCKER-USER -j RETURN")
        #expect(
            user.contains(
                "-A DOCKER-USER -s 2001:db8::/32 -d fd98:18:1::10/128 -o br-apps -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8080 -m tcp --dport 80 -m comment --comment \"portcullis: publish 8080/tcp of web from 203.0.113.0/24, 2001:db8::/32\" -j RETURN"
            ))
        #expect(
            user.contains(
                "-A DOCKER-USER -s fd98:18:17::2/128 -d fd98:18:1::10/128 -i docker0 -o br-apps -p tcp -m tcp --dport 80 -m comment --comment \"portcullis: allow client -> web port 80/tcp\" -j ACCEPT"
            ))
        #expect(!user.contains { $0.contains("-s 203.0.113.") })
        // The IPv4 file keeps its own.
        #expect(!files[0].text.contains("fd98:"))
        #expect(rules(files[0].text, chain: "DOCKER-USER").contains { $0.contains("-s 203.0.113.0/24") })
    }

    /// Without rules of the policy's own, ip6tables holds exactly what 20.10 writes: no
    /// DOCKER-USER.
    @Test func noDockerUserWithoutIpv6Rules() throws {
        let files = try files(
            Self.dualStack.replacingOccurrences(of: " from 203.0.113.0/24, 2001:db8::/32", with: "")
                + "allow client -> web port 80/tcp\n".replacingOccurrences(of: "client", with: "web"))
        #expect(files.count == 2)
        #expect(!files[1].text.contains("DOCKER-USER"))
    }

    /// Later daemons of the classic era: 23.0 on keeps an ip6tables DOCKER-USER (RETURN, jumped
    /// to first) policy rules or not; 25.0 on (as Docker 26.1 wrote it for the oracle) an
    /// internal network's IPv6 drops name both interfaces. Their IPv4 rules are 20.10's, and an
    /// import tells each era from its ip6tables rules.
    @Test func laterErasChangeIp6tablesOnly() throws {
        let policy =
            Self.dualStack.replacingOccurrences(of: " from 203.0.113.0/24, 2001:db8::/32", with: "")
            + "network vault {\n    bridge br-vault\n    subnet 198.18.2.0/24\n    subnet fd98:18:2::/64\n    internal\n}\n"
        let eras = try ["docker-20.10", "docker-23", "docker-25"].map { try files(policy, layout: $0) }
        #expect(eras[1][0].text == eras[0][0].text && eras[2][0].text == eras[0][0].text)
        #expect(!eras[0][1].text.contains("DOCKER-USER"))
        for v6 in [eras[1][1].text, eras[2][1].text] {
            #expect(rules(v6, chain: "FORWARD").first == "-A FORWARD -j DOCKER-USER")
            #expect(rules(v6, chain: "DOCKER-USER") == ["-A DOCKER-USER -j RETURN"])
        }
        let drops = { (text: String) in rules(text, chain: "DOCKER-ISOLATION-STAGE-1").filter { $0.hasSuffix("DROP") } }
        #expect(
            drops(eras[1][1].text) == [
                "-A DOCKER-ISOLATION-STAGE-1 ! -s fd98:18:2::/64 -o br-vault -j DROP",
                "-A DOCKER-ISOLATION-STAGE-1 ! -d fd98:18:2::/64 -i br-vault -j DROP",
            ])
        #expect(
            drops(eras[2][1].text) == [
                "-A DOCKER-ISOLATION-STAGE-1 ! -s fd98:18:2::/64 ! -i br-vault -o br-vault -j DROP",
                "-A DOCKER-ISOLATION-STAGE-1 ! -d fd98:18:2::/64 -i br-vault ! -o br-vault -j DROP",
            ])
        #expect(drops(eras[2][0].text) == drops(eras[0][0].text))
        for (era, layout) in zip(eras, ["docker-20.10", "docker-23", "docker-25"]) {
            var ruleset = Ruleset()
            for (family, file) in zip([TableFamily.ip, .ip6], era) {
                ruleset.tables += try IptablesSaveReader(family: family, source: layout).read(file.text).0.tables
            }
            #expect(HostImport.detectLayout(of: ruleset)?.name == layout)
        }
    }

    /// Off (the default), the layout writes IPv4 only, and refuses IPv6 host addresses with a
    /// hint at the setting.
    @Test func offWritesIpv4OnlyAndRefusesIpv6HostAddresses() throws {
        let off = Self.dualStack.replacingOccurrences(of: "ip6tables on", with: "ip6tables off")
        #expect(try files(off).map(\.fileExtension) == ["iptables"])
        let (loaded, _) = PolicyLoader.load("inline.policy") { _ in
            off.replacingOccurrences(of: "publish 8080", with: "publish [::1]:8080")
        }
        let checked = try Checker.check(loaded).get()
        guard
            case .failure(.diagnostics(let diagnostics, _)) = Compiler().render(
                checked, sources: loaded.sources, layout: Layouts.named("docker-20.10")!, backend: .iptables)
        else {
            Issue.record("docker-20.10 without ip6tables accepted an IPv6 host address")
            return
        }
        #expect(diagnostics.map(\.message) == ["layout docker-20.10 cannot express a publish on an IPv6 host address"])
        #expect(diagnostics.first?.hint?.contains("ip6tables on") == true)
    }

    @Test func docker15RefusesIp6tablesOn() throws {
        let policy = "host {\n    ip6tables on\n}\nnetwork bridge {\n    bridge docker0\n    subnet 172.17.0.0/16\n}\n"
        guard case .failure(.diagnostics(let diagnostics, _)) = compileInline(policy, layout: "docker-1.5") else {
            Issue.record("docker-1.5 accepted ip6tables on")
            return
        }
        #expect(
            diagnostics.map { "\($0.range.start.line): \($0.message)" } == [
                "2: layout docker-1.5 cannot express ip6tables on"
            ])
    }

    @Test func theSettingIsCheckedAsOnOff() {
        guard case .failure(.diagnostics(let diagnostics, _)) = compileInline("host {\n    ip6tables yes\n}\n") else {
            Issue.record("ip6tables yes was accepted")
            return
        }
        #expect(diagnostics.map(\.message) == ["expected 'on' or 'off', found 'yes'"])
    }

    /// The nft backends translate the ip6tables chains too (as iptables-nft holds them).
    @Test func nftBackendsWriteTheIp6Tables() throws {
        let text = try files(Self.dualStack, backend: .nftables)[0].text
        #expect(text.contains("table ip6 filter"))
        #expect(text.contains("table ip6 nat"))
        #expect(text.contains("dnat to [fd98:18:1::10]:80"))
    }
}
