import Foundation
import PortcullisCompiler
import PortcullisIR
import PortcullisLayouts
import PortcullisPolicy
import PortcullisRender
import PortcullisSyntax
import Testing

/// Compiles an in-memory policy with a layout; returns the text of the first file (iptables by
/// default) or the diagnostics.
func compileInline(_ text: String, layout: String = "docker-20.10", backend: Backend = .iptables) -> Result<
    String, CompileFailure
> {
    let (loaded, diagnostics) = PolicyLoader.load("inline.policy") { _ in text }
    if !diagnostics.isEmpty { return .failure(.diagnostics(diagnostics, loaded.sources)) }
    switch Checker.check(loaded) {
    case .failure(let error): return .failure(.diagnostics(error.diagnostics, loaded.sources))
    case .success(let policy):
        return Compiler().render(policy, sources: loaded.sources, layout: Layouts.named(layout)!, backend: backend)
            .map { $0[0].text }
    }
}

func rules(_ text: String, chain: String) -> [String] {
    text.split(separator: "\n").filter { $0.hasPrefix("-A \(chain) ") }.map(String.init)
}

private let twoNetworks = """
    network bridge {
        bridge docker0
        subnet 172.17.0.0/16
    }
    network apps {
        bridge br-apps
        subnet 198.18.1.0/24
    }

    """

@Suite struct LayoutTests {
    @Test func egressHandsOtherBridgesBackToDockerBeforeAccepting() throws {
        let text = try compileInline(
            twoNetworks + "container job {\n    attach apps 198.18.1.2\n}\negress job -> any port 443/tcp\n"
        ).get()
        let user = rules(text, chain: "DOCKER-USER")
        let returnIndex = try #require(user.firstIndex { $0.contains("-o docker0") && $0.hasSuffix("-j RETURN") })
        let acceptIndex = try #require(user.firstIndex { $0.contains("--dport 443") && $0.hasSuffix("-j ACCEPT") })
        let dropIndex = try #require(user.firstIndex { $0.contains("! -o br-apps") && $0.hasSuffix("-j DROP") })
        #expect(returnIndex < acceptIndex && acceptIndex < dropIndex)
        #expect(user[returnIndex].hasPrefix("-A DOCKER-USER -s 198.18.1.2/32 -i br-apps -o docker0"))
    }

    @Test func egressThroughANamedUplinkNeedsNoReturns() throws {
        let text = try compileInline(
            "host {\n    external eth0\n}\n" + twoNetworks
                + "container job {\n    attach apps 198.18.1.2\n}\negress job -> 203.0.113.0/24\n"
        ).get()
        let user = rules(text, chain: "DOCKER-USER")
        #expect(!user.contains { $0.contains("-j RETURN") && $0.contains("-s 198.18.1.2/32") })
        #expect(
            user.contains(
                "-A DOCKER-USER -s 198.18.1.2/32 -d 203.0.113.0/24 -i br-apps -o eth0 -m comment --comment \"portcullis: egress job -> 203.0.113.0/24\" -j ACCEPT"
            ))
    }

    @Test func allowListsMatchOnlyTranslatedConnections() throws {
        let text = try compileInline(
            twoNetworks
                + "container api {\n    attach apps 198.18.1.2\n    publish 0.0.0.0:9000 -> 9000/tcp from 203.0.113.0/24\n}\n"
        ).get()
        let user = rules(text, chain: "DOCKER-USER")
        #expect(user.count == 5)  // replies, allowed source, drop, direct-access drop, RETURN
        #expect(user.allSatisfy { !$0.contains("--ctorigdst ") })
        #expect(user[1].contains("-s 203.0.113.0/24") && user[1].contains("--ctstate DNAT --ctorigdstport 9000"))
        #expect(
            user[2].contains("--ctstate DNAT --ctorigdstport 9000 -m tcp --dport 9000") && user[2].hasSuffix("-j DROP"))
        #expect(
            user[3].hasPrefix(
                "-A DOCKER-USER -d 198.18.1.2/32 ! -i br-apps -o br-apps -p tcp -m conntrack ! --ctstate DNAT")
                && user[3].hasSuffix("-j DROP"))
    }

    @Test func allowListOnAHostAddressMatchesIt() throws {
        let text = try compileInline(
            twoNetworks
                + "container api {\n    attach apps 198.18.1.2\n    publish 198.18.0.9:80 -> 8080 from 203.0.113.5\n}\n"
        ).get()
        #expect(
            text.contains(
                "-m conntrack --ctstate DNAT --ctorigdst 198.18.0.9/32 --ctorigdstport 80 -m tcp --dport 8080"))
        #expect(
            text.contains(
                "-A DOCKER -d 198.18.0.9/32 ! -i br-apps -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.1.2:8080"
            ))
    }

    @Test func loggedDropsAreRateLimitedAndPrecedeTheDrop() throws {
        let text = try compileInline(
            "host {\n    log-drops rate 3/second prefix \"blocked \"\n}\n" + twoNetworks
                + "container a {\n    attach apps 198.18.1.2\n}\ncontainer b {\n    attach apps 198.18.1.3\n}\ndeny a -> b\n"
        ).get()
        let user = rules(text, chain: "DOCKER-USER")
        #expect(user[1].contains("-m limit --limit 3/sec") && user[1].hasSuffix("-j LOG --log-prefix \"blocked \""))
        #expect(user[2].hasSuffix("-j DROP") && !user[2].contains("limit"))
    }

    @Test func exposedRangesArePublishedPortByPort() throws {
        let text = try compileInline(
            twoNetworks + "container m {\n    attach bridge 172.17.0.2\n    expose 7000-7002/udp\n    publish-all\n}\n"
        ).get()
        let dnats = rules(text, chain: "DOCKER").filter { $0.contains("DNAT") }
        #expect(
            dnats == [
                "-A DOCKER ! -i docker0 -p udp -m udp --dport 32768 -j DNAT --to-destination 172.17.0.2:7002",
                "-A DOCKER ! -i docker0 -p udp -m udp --dport 32769 -j DNAT --to-destination 172.17.0.2:7001",
                "-A DOCKER ! -i docker0 -p udp -m udp --dport 32770 -j DNAT --to-destination 172.17.0.2:7000",
            ])
    }

    /// Docker programs published ports on the endpoint that provides the default gateway: the
    /// first non-internal network by name, whatever the order of attachment.
    @Test func portsGoToTheGatewayEndpoint() throws {
        let text = try compileInline(
            twoNetworks
                + "network internal-a {\n    bridge br-ia\n    subnet 198.18.2.0/24\n    internal\n}\n"
                + "container p {\n    attach internal-a 198.18.2.2\n    attach bridge 172.17.0.2\n    attach apps 198.18.1.2\n    publish 80 -> 80\n}\n"
        ).get()
        #expect(text.contains("--to-destination 198.18.1.2:80"))
        #expect(!text.contains("--to-destination 172.17.0.2:80"))
    }

    // Regressions found by scripts/docker-oracle.py against a real Docker 20.10.24; the expected
    // ports and rules are what that daemon wrote.

    /// `-p 8080:80 -P --expose 80 --expose 70`: 80 keeps its fixed binding only.
    @Test func exposedPortWithAPublishGetsNoSecondBinding() throws {
        let text = try compileInline(
            twoNetworks
                + "container web {\n    attach bridge 172.17.0.2\n    publish 8080 -> 80/tcp\n    expose 80/tcp, 70/tcp\n    publish-all\n}\n"
        ).get()
        #expect(
            rules(text, chain: "DOCKER").filter { $0.contains("DNAT") } == [
                "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
                "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 32768 -j DNAT --to-destination 172.17.0.2:70",
            ])
    }

    /// `run --network zulu -P --expose 70`, then `network connect bridge`: the mapping moves to
    /// docker0 ("bridge" sorts first) and is allocated again, so 70 ends on 32769.
    @Test func movingGatewayReallocatesDaemonChosenPorts() throws {
        let text = try compileInline(
            "network bridge {\n    bridge docker0\n    subnet 172.17.0.0/16\n}\nnetwork zulu {\n    bridge br-zulu\n    subnet 198.18.1.0/24\n}\n"
                + "container web {\n    attach zulu 198.18.1.10\n    attach bridge 172.17.0.2\n    expose 70/tcp\n    publish-all\n}\n"
                + "container next {\n    attach bridge 172.17.0.3\n    publish 893/tcp\n}\n"
        ).get()
        let dnats = rules(text, chain: "DOCKER").filter { $0.contains("DNAT") }
        #expect(
            dnats == [
                "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 32769 -j DNAT --to-destination 172.17.0.2:70",
                "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 32770 -j DNAT --to-destination 172.17.0.3:893",
            ])
    }

    /// A port bound on one address is skipped when allocating for all addresses.
    @Test func allocationSkipsPortsBoundOnOneAddress() throws {
        let text = try compileInline(
            twoNetworks
                + "container edge {\n    attach bridge 172.17.0.2\n    publish 198.18.0.20:32768-32769 -> 3191-3192/tcp\n}\n"
                + "container c1 {\n    attach bridge 172.17.0.3\n    expose 369-370/tcp\n    publish-all\n}\n"
        ).get()
        #expect(text.contains("--dport 32770 -j DNAT --to-destination 172.17.0.3:370"))
        #expect(text.contains("--dport 32771 -j DNAT --to-destination 172.17.0.3:369"))
    }

    /// Two containers may publish one port on two different host addresses (a loopback
    /// address, and a network's host binding).
    @Test func samePortOnTwoHostAddressesIsAccepted() throws {
        let text = try compileInline(
            "network bridge {\n    bridge docker0\n    subnet 172.17.0.0/16\n}\nnetwork bound {\n    bridge br-bound\n    subnet 198.18.1.0/24\n    host-binding 198.18.0.5\n}\n"
                + "container web {\n    attach bridge 172.17.0.2\n    publish 127.0.0.1:8080 -> 80\n}\n"
                + "container api {\n    attach bound 198.18.1.10\n    publish 8080 -> 80\n}\n"
        ).get()
        #expect(text.contains("-A DOCKER -d 127.0.0.1/32 ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT"))
        #expect(text.contains("-A DOCKER -d 198.18.0.5/32 ! -i br-bound -p tcp -m tcp --dport 8080 -j DNAT"))
    }

    @Test func docker15RefusesWhatItCannotExpressWithLocations() {
        let policy = """
            host {
                userland-proxy off
            }
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
            }
            network second {
                bridge br-2
                subnet 198.18.1.0/24
                internal
            }
            container s {
                attach bridge 172.17.0.2
                publish 3868 -> 3868/sctp
            }
            """
        guard case .failure(.diagnostics(let diagnostics, _)) = compileInline(policy, layout: "docker-1.5") else {
            Issue.record("docker-1.5 accepted a policy it cannot express")
            return
        }
        let located = diagnostics.map { "\($0.range.start.line): \($0.message)" }.sorted()
        #expect(
            located == [
                "15: layout docker-1.5 cannot express SCTP publishes",
                "2: layout docker-1.5 cannot express userland-proxy off",
                "8: layout docker-1.5 cannot express a second network ('second')",
                "8: layout docker-1.5 cannot express an internal network",
            ])
    }

    /// `dockerd --icc=false --ip-masq=false` changes docker0 only; a `docker network create`
    /// network keeps ICC and masquerading (the host block may even come last).
    @Test func hostIccAndMasqueradeConcernOnlyTheDefaultNetwork() throws {
        let text = try compileInline(
            """
            network bridge {
                bridge docker0
                subnet 172.17.0.0/16
            }
            network user {
                bridge br-user
                subnet 198.18.5.0/24
            }
            host {
                icc deny
                ip-masquerade off
            }
            """
        ).get()
        #expect(rules(text, chain: "FORWARD").contains("-A FORWARD -i docker0 -o docker0 -j DROP"))
        #expect(rules(text, chain: "FORWARD").contains("-A FORWARD -i br-user -o br-user -j ACCEPT"))
        #expect(rules(text, chain: "POSTROUTING") == ["-A POSTROUTING -s 198.18.5.0/24 ! -o br-user -j MASQUERADE"])
    }

    @Test func docker15InsertsTheIccDropWhereTheAcceptWouldBe() throws {
        let text = try compileInline(
            "host {\n    icc deny\n}\nnetwork bridge {\n    bridge docker0\n    subnet 172.17.0.0/16\n}\n",
            layout: "docker-1.5"
        ).get()
        #expect(
            rules(text, chain: "FORWARD") == [
                "-A FORWARD -o docker0 -j DOCKER",
                "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
                "-A FORWARD -i docker0 -o docker0 -j DROP",
            ])
        #expect(text.contains(":FORWARD ACCEPT [0:0]"))
    }

    @Test func docker15PutsPolicyRulesInAChainJumpedToFirst() throws {
        let text = try compileInline(
            "network bridge {\n    bridge docker0\n    subnet 172.17.0.0/16\n}\ncontainer a {\n    attach bridge 172.17.0.2\n}\n"
                + "container b {\n    attach bridge 172.17.0.3\n}\ndeny a -> b port 22/tcp\n",
            layout: "docker-1.5"
        ).get()
        #expect(rules(text, chain: "FORWARD").first == "-A FORWARD -j PORTCULLIS-FORWARD")
        #expect(rules(text, chain: "PORTCULLIS-FORWARD").count == 2)
    }

    @Test func forwardPolicyCanBeSet() throws {
        let accept = try compileInline("host {\n    forward-policy accept\n}\n" + twoNetworks).get()
        #expect(accept.contains(":FORWARD ACCEPT [0:0]"))
        let drop = compileInline("host {\n    forward-policy drop\n}\n" + twoNetworks, layout: "docker-1.5")
        guard case .failure = drop else {
            Issue.record("two networks compiled for docker-1.5")
            return
        }
    }
}
