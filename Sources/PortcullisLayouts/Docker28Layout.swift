import PortcullisIR
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax

/// Docker 28.2.2 to 28.5.2 with its iptables firewaller, IPv4: FORWARD only jumps to
/// `DOCKER-USER` (created empty) and `DOCKER-FORWARD`, which holds the per-bridge accepts behind
/// `DOCKER-CT` (conntrack), `DOCKER-ISOLATION-STAGE-1/2` (no RETURN rules any more) and
/// `DOCKER-BRIDGE` (jumps to `DOCKER`). The filter `DOCKER` chain ends each bridge with a DROP
/// of everything not accepted by a published port; the raw table drops packets routed straight
/// to a container's address from outside its bridge, and remote packets to loopback publishes.
///
/// Rule order follows the daemon's history as moby's generated iptables docs (28.2.2 to 28.5.2)
/// show it. Docker 28 also writes ip6tables rules for IPv6 networks; this layout does not, so it
/// refuses IPv6 subnets and publishes on IPv6 host addresses.
public struct Docker28Layout: Layout {
    public let name = "docker-28"
    public let summary = "Docker 28.2.2-28.5.2 (iptables, IPv4): DOCKER-FORWARD, DOCKER-CT, DOCKER-BRIDGE, raw drops"

    public init() {}

    static let forward = "DOCKER-FORWARD"
    static let conntrack = "DOCKER-CT"
    static let bridges = "DOCKER-BRIDGE"
    static let stage1 = "DOCKER-ISOLATION-STAGE-1"
    static let stage2 = "DOCKER-ISOLATION-STAGE-2"
    static let user = "DOCKER-USER"

    public func lower(_ policy: Policy) -> Result<Ruleset, DiagnosticError> {
        var problems = LayoutDiagnostics(layout: name)
        checkExpressible(policy, &problems)
        let host = policy.host
        var history = XtablesHistory(family: .ip, forwardPolicy: host.forwardPolicyDrop == false ? .accept : .drop)
        // Driver init: the chains, DOCKER-FORWARD's three jumps (each put on top, in reverse, so
        // they read CT, ISOLATION, BRIDGE), the nat jumps (addNATJumpRules), the FORWARD jump.
        history.newChain(.nat, "DOCKER")
        for chain in ["DOCKER", Self.bridges, Self.conntrack, Self.forward, Self.stage1, Self.stage2] {
            history.newChain(.filter, chain)
        }
        for target in [Self.bridges, Self.stage1, Self.conntrack] {
            history.ensureJumpOnTop(.filter, Self.forward, to: target)
        }
        history.append(.nat, "PREROUTING", DockerClassicRules.preroutingToDocker)
        history.append(
            .nat, "OUTPUT", DockerClassicRules.outputToDocker(family: .ipv4, excludeLoopback: host.userlandProxy))
        history.ensureJumpOnTop(.filter, "FORWARD", to: Self.forward)
        // The controller's setupUserChain: since 28.2.2 DOCKER-USER is created empty.
        history.newChain(.filter, Self.user)
        history.ensureJumpOnTop(.filter, "FORWARD", to: Self.user)

        for event in policy.events {
            switch event {
            case .createNetwork(let name):
                guard let network = policy.network(name) else { continue }
                createNetwork(network, host: host, history: &history)
            case .startContainer(let name):
                guard let container = policy.container(name) else { continue }
                startContainer(container, policy: policy, history: &history)
            }
        }
        let userRules = UserRules(policy: policy, family: .ipv4)
        for rule in userRules.rules() { history.append(.filter, Self.user, rule) }
        // Docker 28 drops traffic routed straight to a container in raw PREROUTING, before
        // DOCKER-USER: allowed flows between bridges need an exception there, on top.
        for rule in userRules.crossBridgeAllowances().reversed() { history.insert(.raw, "PREROUTING", rule) }
        return problems.result(Ruleset(tables: history.ruleset(order: [.mangle, .raw, .filter, .nat])))
    }

    private func checkExpressible(_ policy: Policy, _ problems: inout LayoutDiagnostics) {
        for network in policy.networks where network.subnet6 != nil {
            problems.unsupported(
                "an IPv6 subnet (network '\(network.name)')", at: network.origin,
                hint: "Docker 28 writes ip6tables rules for it, which this layout does not; use --layout docker-20.10")
        }
        DockerClassicRules.refuseIPv6HostAddresses(policy, &problems)
    }

    private func createNetwork(_ network: Network, host: HostSettings, history: inout XtablesHistory) {
        guard let subnet = network.subnet4 else { return }
        let provenance = network.origin.provenance
        let bridge = network.bridge
        if network.internal {
            // setupInternalNetworkRules: incoming drop, then outgoing drop, both inserted; then
            // the ICC rule, appended (an internal network has no outgoing accept to carry ICC).
            history.insert(
                .filter, Self.stage1,
                Rule(
                    [.address(.destination, subnet, negated: true), .interface(.source, bridge)], .drop,
                    provenance: provenance))
            history.insert(
                .filter, Self.stage1,
                Rule(
                    [.address(.source, subnet, negated: true), .interface(.destination, bridge)], .drop,
                    provenance: provenance))
            history.append(.filter, Self.forward, DockerClassicRules.icc(network, accept: network.icc))
            return
        }
        let hairpin = !host.userlandProxy
        // setupNonInternalNetworkRules.
        if network.masquerade {
            history.insert(.nat, "POSTROUTING", DockerClassicRules.masquerade(network, subnet))
            if !hairpin {
                history.insert(.nat, "DOCKER", Rule([.interface(.source, bridge)], .return, provenance: provenance))
            }
        }
        if hairpin {
            history.insert(
                .nat, "POSTROUTING",
                Rule([.interface(.destination, bridge), .localAddress(.source)], .masquerade, provenance: provenance))
        }
        if network.icc {
            history.append(.filter, Self.forward, Rule([.interface(.source, bridge)], .accept, provenance: provenance))
        } else {
            history.append(.filter, Self.forward, DockerClassicRules.icc(network, accept: false))
            history.append(.filter, Self.forward, DockerClassicRules.outgoing(network))
        }
        // setDefaultForwardRule, then the DOCKER-CT and DOCKER-BRIDGE rules.
        history.append(
            .filter, "DOCKER",
            Rule(
                [.interface(.source, bridge, negated: true), .interface(.destination, bridge)], .drop,
                provenance: provenance))
        history.append(.filter, Self.conntrack, DockerClassicRules.established(network))
        history.append(.filter, Self.bridges, DockerClassicRules.jumpToDocker(network))
        // setINC: the STAGE-1 jump is appended, the STAGE-2 drop inserted.
        history.append(
            .filter, Self.stage1,
            Rule(
                [.interface(.source, bridge), .interface(.destination, bridge, negated: true)], .jump(Self.stage2),
                provenance: provenance))
        history.insert(.filter, Self.stage2, Rule([.interface(.destination, bridge)], .drop, provenance: provenance))
    }

    /// Endpoints first (one raw direct-access drop per address on a non-internal network), then
    /// the port bindings of the gateway endpoint.
    private func startContainer(_ container: Container, policy: Policy, history: inout XtablesHistory) {
        for attachment in container.attachments {
            guard let network = policy.network(attachment.network), !network.internal, network.subnet4 != nil,
                let address = attachment.address4
            else { continue }
            history.append(
                .raw, "PREROUTING",
                Rule(
                    [
                        .address(.destination, IPPrefix(host: address)),
                        .interface(.source, network.bridge, negated: true),
                    ],
                    .drop, provenance: container.origin.provenance))
        }
        guard let (attachment, network) = DockerClassicRules.portMappingEndpoint(container, policy: policy),
            let address = attachment.address4
        else { return }
        let hairpin = !policy.host.userlandProxy
        for binding in DockerClassicRules.bindings(container) {
            let hostAddress = binding.publish.hostAddress ?? network.hostBinding
            guard hostAddress?.family ?? .ipv4 == .ipv4 else { continue }
            let specific = hostAddress.flatMap { $0.isUnspecified ? nil : $0 }
            let rules = DockerClassicRules.publish(
                binding.publish, hostPort: binding.hostPort, containerPort: binding.containerPort,
                containerAddress: address, network: network, hostAddress: specific, matchBridgeOnDNAT: !hairpin)
            // filterPortMappedOnLoopback: remote packets to a loopback publish are dropped.
            if let specific, Self.loopback.contains(specific) {
                history.append(
                    .raw, "PREROUTING",
                    Rule(
                        [
                            .address(.destination, IPPrefix(host: specific)), .interface(.source, "lo", negated: true),
                            .transport(binding.publish.transport), .port(.destination, PortRange(binding.hostPort)),
                        ], .drop, provenance: binding.publish.origin.provenance))
            }
            // setPerPortNAT (hairpin MASQUERADE only without the proxy), setPerPortForwarding
            // (ACCEPT inserted at the head of DOCKER, above the bridge's DROP). The SCTP checksum
            // rule needs DOCKER_IPTABLES_SCTP_CHECKSUM=1 since 28 and is not written.
            history.append(.nat, "DOCKER", rules.dnat)
            if hairpin { history.append(.nat, "POSTROUTING", rules.hairpinMasquerade) }
            history.insert(.filter, "DOCKER", rules.accept)
        }
    }

    static let loopback = IPPrefix(address: IPAddress(ipv4: 0x7F00_0000), length: 8)
}
