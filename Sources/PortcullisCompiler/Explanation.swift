import PortcullisEvaluator
import PortcullisIR
import PortcullisNet
import PortcullisPolicy
import PortcullisSyntax

/// Turns `explain`'s endpoints (container, network, address, `outside:ADDRESS`, `host`) into a
/// packet and the host's routing, from the policy's networks and containers.
public struct Explanation: Sendable {
    public let policy: Policy
    /// The address the host answers on from outside (for `--to host`).
    public let hostAddress: IPAddress

    /// A live host's own addresses and routes, which then decide instead of the policy's networks.
    public let hostRouting: HostRouting?

    public init(policy: Policy, hostAddress: IPAddress, routing: HostRouting? = nil) {
        self.policy = policy
        self.hostAddress = hostAddress
        hostRouting = routing
    }

    public var externalInterface: String {
        hostRouting?.defaultInterface ?? policy.host.externalInterfaces.first ?? "eth0"
    }

    public var routing: HostRouting {
        if let hostRouting { return hostRouting }
        var local: Set<IPAddress> = [hostAddress]
        var routes: [(IPPrefix, String)] = []
        for network in policy.networks {
            for gateway in [network.gateway4, network.gateway6].compactMap({ $0 }) { local.insert(gateway) }
            if let binding = network.hostBinding { local.insert(binding) }
            for subnet in [network.subnet4, network.subnet6].compactMap({ $0 }) {
                routes.append((subnet, network.bridge))
            }
        }
        for container in policy.containers {
            for publish in container.publishes { if let address = publish.hostAddress { local.insert(address) } }
        }
        return HostRouting(localAddresses: local, routes: routes, defaultInterface: externalInterface)
    }

    public struct Endpoint: Sendable {
        public let address: IPAddress
        /// Where packets from this endpoint enter the host.
        public let interface: String
        public let description: String
    }

    public enum EndpointError: Error, CustomStringConvertible {
        case unknown(String, suggestion: String?)
        case addressSet(String, first: IPPrefix)
        case noAddress(String, IPFamily)

        public var description: String {
            switch self {
            case .unknown(let name, let suggestion):
                "unknown endpoint '\(name)'" + (suggestion.map { "; did you mean '\($0)'?" } ?? "")
                    + " (endpoints are containers, networks, addresses, outside:ADDRESS and host)"
            case .addressSet(let name, let first):
                "'\(name)' is an address set; explain follows one connection: name one of its addresses, as "
                    + "outside:\(first.first) (arriving from outside) or \(first.first) (a destination)"
            case .noAddress(let name, let family):
                "'\(name)' has no \(family == .ipv4 ? "IPv4" : "IPv6") address for this connection"
            }
        }
    }

    /// Resolves an endpoint. A container on several networks is taken, like its own routing
    /// table would, at the network whose subnet holds `toward` (the other end's address), else
    /// at the network it shares with `peer`, else at the one Docker routes it through (the
    /// first non-internal network by name), else at its first.
    public func endpoint(
        _ text: String, peer: String? = nil, toward: IPAddress? = nil, family: IPFamily = .ipv4
    ) throws(EndpointError) -> Endpoint {
        if text == "host" {
            // The host speaks to a network from its address there (the kernel picks the
            // outgoing interface's), and to everything else from its own.
            let onBridge = toward.flatMap { toward in
                policy.networks.first {
                    ($0.subnet4?.contains(toward) ?? false) || ($0.subnet6?.contains(toward) ?? false)
                }
                .flatMap { toward.family == .ipv4 ? $0.gateway4 : $0.gateway6 }
            }
            let address = onBridge ?? hostAddress
            return Endpoint(address: address, interface: "lo", description: "host \(address)")
        }
        if text.hasPrefix("outside:"), let address = IPAddress(String(text.dropFirst("outside:".count))) {
            return Endpoint(
                address: address, interface: externalInterface, description: "\(address) via \(externalInterface)")
        }
        func address(_ attachment: Attachment) -> IPAddress? {
            family == .ipv4 ? attachment.address4 : attachment.address6
        }
        func subnet(_ network: Network?) -> IPPrefix? { family == .ipv4 ? network?.subnet4 : network?.subnet6 }
        if let container = policy.container(text) {
            let peerNetworks = Set(peer.flatMap { policy.container($0)?.attachments.map(\.network) } ?? [])
            let attachment =
                container.attachments.first { attachment in
                    guard let toward, address(attachment) != nil else { return false }
                    return subnet(policy.network(attachment.network))?.contains(toward) == true
                }
                ?? container.attachments.first { peerNetworks.contains($0.network) && address($0) != nil }
                ?? container.gatewayAttachment(network: policy.network).flatMap { address($0.0) == nil ? nil : $0.0 }
                ?? container.attachments.first { address($0) != nil }
            guard let attachment, let found = address(attachment), let network = policy.network(attachment.network)
            else {
                throw .noAddress(text, family)
            }
            return Endpoint(
                address: found, interface: network.bridge, description: "\(text) (\(found) on \(network.bridge))")
        }
        if let network = policy.network(text), let subnet = subnet(network) {
            let taken = Set(
                policy.containers.flatMap { $0.attachments.compactMap(address) }
                    + [family == .ipv4 ? network.gateway4 : network.gateway6].compactMap { $0 })
            var candidate = subnet.first.adding(1)
            while taken.contains(candidate) && subnet.contains(candidate) { candidate = candidate.adding(1) }
            return Endpoint(
                address: candidate, interface: network.bridge,
                description: "network \(text) (as \(candidate) on \(network.bridge))")
        }
        if let address = IPAddress(text) {
            if let hostRouting {
                let interface = hostRouting.interface(for: address)
                return Endpoint(address: address, interface: interface, description: "\(address) on \(interface)")
            }
            if let network = policy.networks.first(where: {
                ($0.subnet4?.contains(address) ?? false) || ($0.subnet6?.contains(address) ?? false)
            }) {
                return Endpoint(
                    address: address, interface: network.bridge, description: "\(address) on \(network.bridge)")
            }
            return Endpoint(
                address: address, interface: externalInterface, description: "\(address) via \(externalInterface)")
        }
        if let first = policy.addressSets[text]?.first { throw .addressSet(text, first: first) }
        let names = policy.containers.map(\.name) + policy.networks.map(\.name)
        throw .unknown(text, suggestion: closestMatch(text, in: names))
    }

    /// The family of a connection: that of an address either end names, else IPv4.
    public static func family(from: String, to: String) -> IPFamily {
        for text in [from, to] {
            let literal = text.hasPrefix("outside:") ? String(text.dropFirst("outside:".count)) : text
            if let address = IPAddress(literal) { return address.family }
        }
        return .ipv4
    }
}
