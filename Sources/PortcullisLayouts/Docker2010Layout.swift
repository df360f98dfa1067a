import PortcullisIR
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax

/// Docker's classic layout (18.06 to 27.x), as Docker 20.10 writes it: `DOCKER-USER` and
/// `DOCKER-ISOLATION-STAGE-1/2` jumped to from the top of FORWARD, a block of four FORWARD rules
/// per bridge, per-port DNAT / ACCEPT / hairpin MASQUERADE. IPv6 networks are carried in the
/// policy but not rendered: 20.10 writes no ip6tables rules unless its experimental
/// `--ip6tables` is on.
public struct Docker2010Layout: Layout {
    public let name = "docker-20.10"
    public let summary = "Docker 18.06-27.x classic chains, exactly as Docker 20.10 writes them"

    public init() {}

    static let stage1 = "DOCKER-ISOLATION-STAGE-1"
    static let stage2 = "DOCKER-ISOLATION-STAGE-2"
    static let user = "DOCKER-USER"

    public func lower(_ policy: Policy) -> Result<Ruleset, DiagnosticError> {
        var problems = LayoutDiagnostics(layout: name)
        problems.refuseGatewayModes(policy)
        let host = policy.host
        var history = XtablesHistory(family: .ip, forwardPolicy: host.forwardPolicyDrop == false ? .accept : .drop)
        // Daemon start: setupIPChains.
        history.newChain(.nat, "DOCKER")
        history.newChain(.filter, "DOCKER")
        history.newChain(.filter, Self.stage1)
        history.newChain(.filter, Self.stage2)
        history.append(.filter, Self.stage1, Rule([], .return, provenance: .daemon))
        history.append(.filter, Self.stage2, Rule([], .return, provenance: .daemon))
        setupUserChain(&history)

        for event in policy.events {
            switch event {
            case .createNetwork(let name):
                guard let network = policy.network(name) else { continue }
                createNetwork(network, host: host, history: &history)
                setupUserChain(&history)
            case .startContainer(let name):
                guard let container = policy.container(name) else { continue }
                DockerClassicRules.programPorts(
                    container, policy: policy, matchBridgeOnDNAT: host.userlandProxy, history: &history)
            }
        }
        DockerClassicRules.refuseIPv6HostAddresses(policy, &problems)
        let userRules = UserRules(policy: policy, family: .ipv4).rules()
        for rule in userRules.reversed() { history.insert(.filter, Self.user, rule) }
        return problems.result(Ruleset(tables: history.ruleset(order: [.mangle, .filter, .nat])))
    }

    /// The controller's `setupUserChain`, re-run after every network: DOCKER-USER exists, ends
    /// in RETURN, and FORWARD jumps to it first.
    private func setupUserChain(_ history: inout XtablesHistory) {
        history.newChain(.filter, Self.user)
        history.append(.filter, Self.user, Rule([], .return, provenance: .daemon))
        history.ensureJumpOnTop(.filter, "FORWARD", to: Self.user)
    }

    private func createNetwork(_ network: Network, host: HostSettings, history: inout XtablesHistory) {
        guard let subnet = network.subnet4 else { return }
        let hairpin = !host.userlandProxy
        let provenance = network.origin.provenance
        if network.internal {
            // setupInternalNetworkRules: incoming drop, then outgoing drop, both inserted.
            history.insert(
                .filter, Self.stage1,
                Rule(
                    [.address(.destination, subnet, negated: true), .interface(.source, network.bridge)], .drop,
                    provenance: provenance))
            history.insert(
                .filter, Self.stage1,
                Rule(
                    [.address(.source, subnet, negated: true), .interface(.destination, network.bridge)], .drop,
                    provenance: provenance))
            setIcc(network, &history)
        } else {
            // setupIPTablesInternal.
            if network.masquerade {
                history.insert(.nat, "POSTROUTING", DockerClassicRules.masquerade(network, subnet))
            }
            if network.masquerade && !hairpin {
                history.insert(
                    .nat, "DOCKER", Rule([.interface(.source, network.bridge)], .return, provenance: provenance))
            }
            if hairpin {
                history.insert(
                    .nat, "POSTROUTING",
                    Rule(
                        [.interface(.destination, network.bridge), .localAddress(.source)], .masquerade,
                        provenance: provenance))
            }
            setIcc(network, &history)
            history.insert(.filter, "FORWARD", DockerClassicRules.outgoing(network))
            // ProgramChain for nat, then filter.
            history.append(.nat, "PREROUTING", DockerClassicRules.preroutingToDocker)
            history.append(.nat, "OUTPUT", DockerClassicRules.outputToDocker(family: .ipv4, excludeLoopback: !hairpin))
            history.insert(.filter, "FORWARD", DockerClassicRules.jumpToDocker(network))
            history.insert(.filter, "FORWARD", DockerClassicRules.established(network))
        }
        history.ensureJumpOnTop(.filter, "FORWARD", to: Self.stage1)
        if !network.internal {
            // setINC: isolate this bridge from every other.
            history.insert(
                .filter, Self.stage1,
                Rule(
                    [.interface(.source, network.bridge), .interface(.destination, network.bridge, negated: true)],
                    .jump(Self.stage2), provenance: provenance))
            history.insert(
                .filter, Self.stage2, Rule([.interface(.destination, network.bridge)], .drop, provenance: provenance))
        }
    }

    /// ICC on inserts an ACCEPT; ICC off appends a DROP (so DROPs gather at the end of FORWARD).
    private func setIcc(_ network: Network, _ history: inout XtablesHistory) {
        if network.icc {
            history.insert(.filter, "FORWARD", DockerClassicRules.icc(network, accept: true))
        } else {
            history.append(.filter, "FORWARD", DockerClassicRules.icc(network, accept: false))
        }
    }
}
