import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// What Docker 28.2.2+ and Docker 29 (iptables backend) have in common: the `DOCKER-FORWARD`,
/// `DOCKER-CT` and `DOCKER-BRIDGE` chains, the per-bridge DROP at the end of filter `DOCKER`,
/// per-port ACCEPTs inserted above it, and the raw-PREROUTING direct-access drops. The two differ
/// in how they isolate networks: 28 has `DOCKER-ISOLATION-STAGE-1/2` (internal networks' drops in
/// STAGE-1) and a nat `DOCKER -i BR -j RETURN` per bridge; 29 has neither, and keeps internal
/// networks' drops in `DOCKER-INTERNAL`.
///
/// Both write the same rules to ip6tables for the networks with an IPv6 subnet (one instance per
/// family): IPv6 DNAT leaves link-local sources alone (`! -s fe80::/10`), internal networks'
/// drops also match the other interface (`! -i BR -o BR`, `-i BR ! -o BR`), and loopback
/// publishes get no raw drop (`::1` is not routable).
struct DockerModernRules {

    /// Docker 28: STAGE-1/2 isolation and the nat skip-DNAT RETURNs; Docker 29: neither.
    let isolationChains: Bool
    /// iptables (`.ipv4`) or ip6tables (`.ipv6`).
    var family: IPFamily = .ipv4

    var tableFamily: TableFamily { family == .ipv4 ? .ip : .ip6 }
    func subnet(_ network: Network) -> IPPrefix? { family == .ipv4 ? network.subnet4 : network.subnet6 }
    func address(_ attachment: Attachment) -> IPAddress? {
        family == .ipv4 ? attachment.address4 : attachment.address6
    }

    /// The tables of a Docker 28 or 29 host: iptables, and ip6tables when a network has an IPv6
    /// subnet (Docker, with ip6tables on by default since 27.0, also creates its ip6 chains on a
    /// host without one; they are left out then, as for Docker 29's nftables tables).
    static func tables(_ policy: Policy, isolationChains: Bool) -> [Table] {
        let families: [IPFamily] = policy.networks.contains { $0.subnet6 != nil } ? [.ipv4, .ipv6] : [.ipv4]
        return families.flatMap { family in
            let rules = DockerModernRules(isolationChains: isolationChains, family: family)
            var history = rules.start(host: policy.host)
            rules.replay(policy, history: &history)
            return history.ruleset(order: [.mangle, .raw, .filter, .nat])
        }
    }

    /// The chain holding internal networks' drops.
    var internalDrops: String { isolationChains ? DockerChain.isolationStage1 : DockerChain.`internal` }

    /// The chain skeleton, DOCKER-FORWARD's jumps and the nat and FORWARD jumps, as the driver's
    /// init and the controller's setupUserChain leave them.
    func start(host: HostSettings) -> XtablesHistory {
        var history = XtablesHistory(
            family: tableFamily, forwardPolicy: host.forwardPolicyDrop == false ? .accept : .drop)
        // Driver init: the chains, DOCKER-FORWARD's three jumps (each put on top, in reverse, so
        // they read CT, ISOLATION or INTERNAL, BRIDGE), the nat jumps (addNATJumpRules), the
        // FORWARD jump.
        history.newChain(.nat, DockerChain.docker)
        let middle =
            isolationChains ? [DockerChain.isolationStage1, DockerChain.isolationStage2] : [DockerChain.`internal`]
        for chain in [DockerChain.docker, DockerChain.bridge, DockerChain.conntrack, DockerChain.forward] + middle {
            history.newChain(.filter, chain)
        }
        for target in [DockerChain.bridge, middle[0], DockerChain.conntrack] {
            history.ensureJumpOnTop(.filter, DockerChain.forward, to: target)
        }
        history.append(.nat, "PREROUTING", DockerClassicRules.preroutingToDocker)
        history.append(
            .nat, "OUTPUT", DockerClassicRules.outputToDocker(family: family, excludeLoopback: host.userlandProxy))
        history.ensureJumpOnTop(.filter, "FORWARD", to: DockerChain.forward)
        // The controller's setupUserChain: since 28.2.2 DOCKER-USER is created empty.
        history.newChain(.filter, DockerChain.user)
        history.ensureJumpOnTop(.filter, "FORWARD", to: DockerChain.user)
        return history
    }

    /// Replays the policy's events, then adds the policy's own rules to DOCKER-USER and, for
    /// allowed flows across bridges, exceptions on top of raw PREROUTING (the direct-access
    /// drops there come before DOCKER-USER).
    func replay(_ policy: Policy, history: inout XtablesHistory) {
        for event in policy.events {
            switch event {
            case .createNetwork(let name):
                guard let network = policy.network(name) else { continue }
                createNetwork(network, host: policy.host, history: &history)
            case .startContainer(let name):
                guard let container = policy.container(name) else { continue }
                startContainer(container, policy: policy, history: &history)
            }
        }
        let userRules = UserRules(policy: policy, family: family)
        for rule in userRules.rules() { history.append(.filter, DockerChain.user, rule) }
        history.insertOnTop(.raw, "PREROUTING", userRules.crossBridgeAllowances())
    }

    func createNetwork(_ network: Network, host: HostSettings, history: inout XtablesHistory) {
        guard let subnet = subnet(network) else { return }
        if network.internal {
            createInternalNetwork(network, subnet: subnet, history: &history)
            return
        }
        createNonInternalNetwork(network, subnet: subnet, host: host, history: &history)
        guard isolationChains else { return }
        isolate(network, history: &history)
    }

    /// setupInternalNetworkRules: incoming drop, then outgoing drop, both inserted; then the
    /// ICC rule, appended (an internal network has no outgoing accept to carry ICC). For IPv6
    /// each drop also names the other interface, so that link-local traffic within the bridge
    /// is not caught.
    private func createInternalNetwork(_ network: Network, subnet: IPPrefix, history: inout XtablesHistory) {
        let provenance = network.origin.provenance
        let bridge = network.bridge
        let ipv6 = family == .ipv6
        history.insert(
            .filter, internalDrops,
            Rule(
                [.address(.destination, subnet, negated: true), .interface(.source, bridge)]
                    + (ipv6 ? [.interface(.destination, bridge, negated: true)] : []), .drop,
                provenance: provenance))
        history.insert(
            .filter, internalDrops,
            Rule(
                [.address(.source, subnet, negated: true)]
                    + (ipv6 ? [.interface(.source, bridge, negated: true)] : [])
                    + [.interface(.destination, bridge)], .drop,
                provenance: provenance))
        history.append(.filter, DockerChain.forward, DockerClassicRules.icc(network, accept: network.icc))
    }

    private func createNonInternalNetwork(
        _ network: Network, subnet: IPPrefix, host: HostSettings, history: inout XtablesHistory
    ) {
        let provenance = network.origin.provenance
        let bridge = network.bridge
        let hairpin = !host.userlandProxy
        let mode = gatewayMode(network)
        let routed = mode == .routed
        // setupNonInternalNetworkRules: no masquerading in routed mode; Docker 28 skips DNAT for
        // traffic from the bridge when it masquerades with the proxy on, and always in routed
        // mode.
        if network.masquerade && !routed {
            history.insert(.nat, "POSTROUTING", DockerClassicRules.masquerade(network, subnet))
        }
        if isolationChains && (routed || (network.masquerade && !hairpin)) {
            history.insert(
                .nat, DockerChain.docker, Rule([.interface(.source, bridge)], .return, provenance: provenance))
        }
        if hairpin {
            history.insert(
                .nat, "POSTROUTING",
                Rule([.interface(.destination, bridge), .localAddress(.source)], .masquerade, provenance: provenance))
        }
        if network.icc {
            history.append(
                .filter, DockerChain.forward, Rule([.interface(.source, bridge)], .accept, provenance: provenance))
        } else {
            history.append(.filter, DockerChain.forward, DockerClassicRules.icc(network, accept: false))
        }
        // setICMP: routed networks accept ICMP from anywhere.
        if routed {
            history.append(
                .filter, DockerChain.docker,
                Rule([.interface(.destination, bridge), .icmp], .accept, provenance: provenance))
        }
        if !network.icc { history.append(.filter, DockerChain.forward, DockerClassicRules.outgoing(network)) }
        // setDefaultForwardRule (ACCEPT for nat-unprotected), then the DOCKER-CT and DOCKER-BRIDGE
        // rules.
        history.append(
            .filter, DockerChain.docker,
            Rule(
                [.interface(.source, bridge, negated: true), .interface(.destination, bridge)],
                mode == .natUnprotected ? .accept : .drop, provenance: provenance))
        history.append(.filter, DockerChain.conntrack, DockerClassicRules.established(network))
        history.append(.filter, DockerChain.bridge, DockerClassicRules.jumpToDocker(network))
    }

    /// setINC: for a routed network, a RETURN for traffic into it and an ACCEPT for its
    /// replies, both inserted; then the STAGE-1 jump is appended, the STAGE-2 drop inserted.
    private func isolate(_ network: Network, history: inout XtablesHistory) {
        let provenance = network.origin.provenance
        let bridge = network.bridge
        if gatewayMode(network) == .routed {
            history.insert(
                .filter, DockerChain.isolationStage1,
                Rule([.interface(.destination, bridge)], .return, provenance: provenance))
            history.insert(
                .filter, DockerChain.isolationStage1,
                Rule(
                    [.interface(.source, bridge), .connectionState([.related, .established])], .accept,
                    provenance: provenance))
        }
        history.append(
            .filter, DockerChain.isolationStage1,
            Rule(
                [.interface(.source, bridge), .interface(.destination, bridge, negated: true)],
                .jump(DockerChain.isolationStage2),
                provenance: provenance))
        history.insert(
            .filter, DockerChain.isolationStage2,
            Rule([.interface(.destination, bridge)], .drop, provenance: provenance))
    }

    /// Endpoints first (one raw direct-access drop per address on a non-internal network), then
    /// the port bindings of the gateway endpoint.
    func startContainer(_ container: Container, policy: Policy, history: inout XtablesHistory) {
        for attachment in container.attachments {
            // filterDirectAccess: not for internal networks, nor in routed or nat-unprotected mode.
            guard let network = policy.network(attachment.network), !network.internal, subnet(network) != nil,
                gatewayMode(network) == .nat, let address = address(attachment)
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
            let address = address(attachment)
        else { return }
        let hairpin = !policy.host.userlandProxy
        let mode = gatewayMode(network)
        for binding in DockerDaemon.docker27.portMappings(policy).bindings(of: container) {
            guard let host = Self.hostBinding(binding.publish, network: network, family: family) else { continue }
            let specific = host.address
            var rules = DockerClassicRules.publish(
                binding.publish, hostPort: binding.hostPort, containerPort: binding.containerPort,
                containerAddress: address, network: network, hostAddress: specific, matchBridgeOnDNAT: !hairpin)
            if family == .ipv6 {
                // setPerPortNAT: link-local sources are never translated.
                rules.dnat.matches.insert(.address(.source, Self.linkLocal, negated: true), at: 0)
            }
            // setPerPortForwarding (ACCEPT inserted at the head of DOCKER, above the bridge's
            // DROP), except in nat-unprotected mode, where the bridge's rule accepts everything.
            if mode != .natUnprotected { history.insert(.filter, DockerChain.docker, rules.accept) }
            // Routed mode maps no host port: no DNAT, hairpin MASQUERADE or loopback drop.
            guard mode != .routed else { continue }
            // filterPortMappedOnLoopback: remote packets to a loopback publish are dropped.
            if let specific, IPPrefix.loopback(.ipv4).contains(specific) {
                history.append(
                    .raw, "PREROUTING",
                    Rule(
                        [
                            .address(.destination, IPPrefix(host: specific)), .interface(.source, "lo", negated: true),
                            .transport(binding.publish.transport), .port(.destination, PortRange(binding.hostPort)),
                        ], .drop, provenance: binding.publish.origin.provenance))
            }
            // setPerPortNAT (hairpin MASQUERADE only without the proxy). The SCTP checksum rule
            // needs DOCKER_IPTABLES_SCTP_CHECKSUM=1 since 28 and is not written.
            history.append(.nat, DockerChain.docker, rules.dnat)
            if hairpin { history.append(.nat, "POSTROUTING", rules.hairpinMasquerade) }
        }
    }

    /// A network's gateway mode in this family (IPv6 is always `nat`).
    func gatewayMode(_ network: Network) -> GatewayMode { family == .ipv4 ? network.gatewayMode4 : .nat }

    static let linkLocal = IPPrefix(address: IPAddress(ipv6: 0xfe80 << 48, 0), length: 10)

    /// Whether a publish binds in `family`, and on which host address (nil: every address of
    /// it). Without a host address Docker binds 0.0.0.0 and [::] unless the network's default
    /// binding (`host-binding`) names an IPv4 address; a publish on an address binds in its
    /// family only.
    static func hostBinding(_ publish: Publish, network: Network, family: IPFamily) -> HostBinding? {
        let chosen = publish.hostAddress ?? network.hostBinding
        guard let chosen else { return HostBinding(address: nil) }
        if chosen.isUnspecified {
            return publish.hostAddress == nil || chosen.family == family ? HostBinding(address: nil) : nil
        }
        return chosen.family == family ? HostBinding(address: chosen) : nil
    }

    /// A publish's host address in one family; nil means every address of it.
    struct HostBinding {
        let address: IPAddress?
    }
}
