import PortcullisIR
import PortcullisNet
import PortcullisPolicy

/// Rule templates Docker has used unchanged from 1.5 to 27.x (`pkg/iptables` in 1.5,
/// `libnetwork/iptables` later). Both classic layouts build their rules from these, so their
/// exact text lives in one place.
enum DockerClassicRules {
    static func masquerade(_ network: Network, _ subnet: IPPrefix) -> Rule {
        Rule(
            [.address(.source, subnet), .interface(.destination, network.bridge, negated: true)], .masquerade,
            provenance: network.origin.provenance)
    }

    static func icc(_ network: Network, accept: Bool) -> Rule {
        Rule(
            [.interface(.source, network.bridge), .interface(.destination, network.bridge)], accept ? .accept : .drop,
            provenance: network.origin.provenance)
    }

    static func outgoing(_ network: Network) -> Rule {
        Rule(
            [.interface(.source, network.bridge), .interface(.destination, network.bridge, negated: true)], .accept,
            provenance: network.origin.provenance)
    }

    static func established(_ network: Network) -> Rule {
        Rule(
            [.interface(.destination, network.bridge), .connectionState([.related, .established])], .accept,
            provenance: network.origin.provenance)
    }

    static func jumpToDocker(_ network: Network) -> Rule {
        Rule(
            [.interface(.destination, network.bridge)], .jump(DockerChain.docker), provenance: network.origin.provenance
        )
    }

    static let preroutingToDocker = Rule([.localAddress(.destination)], .jump(DockerChain.docker), provenance: .daemon)

    /// nat OUTPUT jump; with the userland proxy on, loopback destinations are left to the proxy.
    static func outputToDocker(family: IPFamily, excludeLoopback: Bool) -> Rule {
        Rule(
            (excludeLoopback ? [.address(.destination, .loopback(family), negated: true)] : []) + [
                .localAddress(.destination)
            ],
            .jump(DockerChain.docker), provenance: .daemon)
    }

    /// The three (SCTP: four) rules of one published port, as `ChainInfo.Forward` writes them.
    struct PortRules {
        var dnat: Rule
        var accept: Rule
        var hairpinMasquerade: Rule
        var sctpChecksum: Rule?
    }

    static func publish(
        _ publish: Publish, hostPort: UInt16, containerPort: UInt16, containerAddress: IPAddress, network: Network,
        hostAddress: IPAddress?, matchBridgeOnDNAT: Bool
    ) -> PortRules {
        let provenance = publish.origin.provenance
        let transport = publish.transport
        let containerHost = IPPrefix(host: containerAddress)
        var dnatMatches: [Match] = []
        if let hostAddress { dnatMatches.append(.address(.destination, IPPrefix(host: hostAddress))) }
        if matchBridgeOnDNAT { dnatMatches.append(.interface(.source, network.bridge, negated: true)) }
        dnatMatches += [.transport(transport), .port(.destination, PortRange(hostPort))]
        return PortRules(
            dnat: Rule(dnatMatches, .dnat(containerAddress, PortRange(containerPort)), provenance: provenance),
            accept: Rule(
                [
                    .address(.destination, containerHost), .interface(.source, network.bridge, negated: true),
                    .interface(.destination, network.bridge), .transport(transport),
                    .port(.destination, PortRange(containerPort)),
                ], .accept, provenance: provenance),
            hairpinMasquerade: Rule(
                [
                    .address(.source, containerHost), .address(.destination, containerHost), .transport(transport),
                    .port(.destination, PortRange(containerPort)),
                ], .masquerade, provenance: provenance),
            sctpChecksum: transport == .sctp
                ? Rule(
                    [.transport(.sctp), .port(.source, PortRange(containerPort))], .checksumFill, provenance: provenance
                )
                : nil)
    }

    /// Without ip6tables rules (Docker 1.5 had none; 20.10 writes them only with its
    /// experimental --ip6tables) a publish on an IPv6 host address cannot be honoured.
    static func refuseIPv6HostAddresses(_ policy: Policy, _ problems: inout LayoutDiagnostics, hint: String) {
        for container in policy.containers {
            for publish in container.publishes where publish.hostAddress?.family == .ipv6 {
                problems.unsupported("a publish on an IPv6 host address", at: publish.origin, hint: hint)
            }
        }
    }

    /// The endpoint Docker programs a container's port mappings on: the one that provides the
    /// default gateway, which libnetwork picks among non-internal networks by network name.
    static func portMappingEndpoint(_ container: Container, policy: Policy) -> (Attachment, Network)? {
        container.gatewayAttachment(network: policy.network)
    }

    /// Appends the rules of every binding of a container in one family, as `ChainInfo.Forward`
    /// does at start. Docker 20.10 maps a binding in each family where the container has an
    /// address on the gateway endpoint and the host address allows it (`validatePortBindingIPv4`,
    /// `validatePortBindingIPv6`): no host address means both, `0.0.0.0` or `::` one family.
    /// `ports`: the daemon's, in Docker 20.10's order (`DockerDaemon.docker2010`).
    static func programPorts(
        _ container: Container, policy: Policy, ports: PortMappings, family: IPFamily = .ipv4,
        matchBridgeOnDNAT: Bool, history: inout XtablesHistory
    ) {
        guard let (attachment, network) = portMappingEndpoint(container, policy: policy),
            let address = family == .ipv4 ? attachment.address4 : attachment.address6
        else { return }
        for binding in ports.bindings(of: container, family: family) {
            guard let host = DockerModernRules.hostBinding(binding.publish, network: network, family: family)
            else { continue }
            let rules = publish(
                binding.publish, hostPort: binding.hostPort, containerPort: binding.containerPort,
                containerAddress: address, network: network, hostAddress: host.address,
                matchBridgeOnDNAT: matchBridgeOnDNAT)
            history.append(.nat, DockerChain.docker, rules.dnat)
            history.append(.filter, DockerChain.docker, rules.accept)
            history.append(.nat, "POSTROUTING", rules.hairpinMasquerade)
            if let checksum = rules.sctpChecksum { history.append(.mangle, "POSTROUTING", checksum) }
        }
    }
}
