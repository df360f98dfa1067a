import PortcullisNet
import PortcullisSyntax

/// What the Docker daemon decides about publishes: the order it programs them in, the host
/// ports it chooses, and the publishes it refuses.
extension Checker {
    /// Docker 20.10's binding order (`DockerPortOrder`) for publishes whose first `explicit` are
    /// `-p` bindings and the rest `publish-all`'s, one per exposed port without a binding (which
    /// Docker adds after sorting, where the sort put the port). Exposed ports take part in the
    /// sort even without `publish-all`. Go's map order is taken to start at `start`.
    static func bindingOrder(
        _ publishes: [Publish], explicit: Int, exposed: [PortSpec], startingAt start: DockerPortOrder.Port?
    ) -> [PublishedPort] {
        typealias Port = DockerPortOrder.Port
        var bindings: [Port: [(hostPort: UInt16, binding: PublishedPort)]] = [:]
        var publishAll: [Port: PublishedPort] = [:]
        for (index, publish) in publishes.enumerated() {
            for offset in 0..<publish.containerPorts.count {
                let port = Port(UInt16(Int(publish.containerPorts.first) + offset), publish.transport)
                let position = PublishedPort(publish: index, offset: offset)
                if index < explicit {
                    let hostPort = publish.hostPortIsEphemeral ? 0 : UInt16(Int(publish.hostPorts.first) + offset)
                    bindings[port, default: []].append((hostPort, position))
                } else {
                    publishAll[port] = position
                }
            }
        }
        var ports = Set(bindings.keys)
        for spec in exposed {
            for number in spec.ports.first...spec.ports.last { ports.insert(Port(number, spec.transport)) }
        }
        let rotations = DockerPortOrder.rotations(of: Array(ports))
        let mapOrder = rotations.first { $0.first == start } ?? rotations.first ?? []
        return DockerPortOrder.sortPortMap(ports: mapOrder, bindings: bindings).flatMap { port, bound in
            bound.isEmpty ? publishAll[port].map { [$0] } ?? [] : bound
        }
    }

    /// The host address a publish binds: its own, else its network's `host-binding`; nil for
    /// every address.
    func boundAddress(_ publish: Publish, of container: Container) -> IPAddress? {
        let address = publish.hostAddress ?? container.gatewayAttachment(network: network)?.1.hostBinding
        return address.flatMap { $0.isUnspecified ? nil : $0 }
    }

    /// Gives publishes without a host port a port from the ephemeral range the way Docker's port
    /// allocator does: containers in start order; within a container, in Docker's binding order
    /// (`Container.bindingOrder`), fixed host ports taken as they come; one counter per host
    /// address and protocol that moves on from the last port it handed out, skipping ports in use
    /// on that address or on all addresses (and, for all addresses, on any). A fixed host port
    /// the daemon already handed out is refused, as Docker refuses to start the container.
    /// A container whose gateway network changes as its later networks are connected has its
    /// mappings released and programmed again, so its ports are allocated once per change.
    /// Docker 20.10 allocates each binding once per family, IPv4 first (`allocatePortsInternal`),
    /// with separate counters for `0.0.0.0` and `::`: an IPv6 binding exists when the mapping
    /// endpoint has an IPv6 address, or for any container while the userland proxy runs (it
    /// proxies `::` to the IPv4 address). So the two counters can drift apart; where they do, the
    /// IPv6 port is kept in `hostPorts6`.
    mutating func allocateEphemeralPorts() {
        struct Key: Hashable {
            let address: IPAddress?
            let transport: TransportProtocol
            let ipv6: Bool
        }
        /// Ports in use, with the daemon-chosen publish that holds each (nil for a fixed one).
        var taken: [Key: [UInt16: (container: Int, publish: Int)?]] = [:]
        var last: [Key: UInt16] = [:]
        let range = host.ephemeralPorts
        /// A port is in use for an address if it is bound on that address or on all
        /// addresses of its family; for all addresses, if it is bound on any of them.
        func holder(_ port: UInt16, _ key: Key) -> (container: Int, publish: Int)?? {
            for (other, ports) in taken
            where other.transport == key.transport && other.ipv6 == key.ipv6
                && (other.address == key.address || other.address == nil || key.address == nil)
            {
                if let holder = ports[port] { return holder }
            }
            return nil
        }
        for c in containers.indices {
            let container = containers[c]
            // The gateway endpoint after the run (first attachment) and after each connect.
            var gateways: [(Attachment, Network)] = []
            for count in 1...max(1, container.attachments.count) {
                if let gateway = container.gatewayAttachment(afterConnecting: count, network: network),
                    gateways.last?.1.name != gateway.1.name
                {
                    gateways.append(gateway)
                }
            }
            var held: [(Key, UInt16)] = []
            for (attachment, gateway) in gateways {
                for (key, port) in held { taken[key]?[port] = nil }
                held = []
                /// The binding of each family (`validatePortBindingIPv4`, `validatePortBindingIPv6`).
                func keys(_ publish: Publish) -> [Key] {
                    let chosen = publish.hostAddress ?? gateway.hostBinding
                    let address = chosen.flatMap { $0.isUnspecified ? nil : $0 }
                    var keys: [Key] = []
                    if chosen?.family ?? .ipv4 == .ipv4 {
                        keys.append(Key(address: address, transport: publish.transport, ipv6: false))
                    }
                    let bindsIPv6 =
                        publish.hostAddress.map { $0.family == .ipv6 } ?? (gateway.hostBinding?.isUnspecified ?? true)
                    if bindsIPv6 && (attachment.address6 != nil || host.userlandProxy) {
                        keys.append(Key(address: address, transport: publish.transport, ipv6: true))
                    }
                    return keys
                }
                for position in container.bindingOrder {
                    let p = position.publish
                    let publish = containers[c].publishes[p]
                    guard publish.hostPortIsEphemeral else {
                        let port = UInt16(Int(publish.hostPorts.first) + position.offset)
                        for key in keys(publish) {
                            if case .some(.some(let owner)) = holder(port, key) {
                                let other = containers[owner.container].publishes[owner.publish]
                                error(
                                    "host port \(port)/\(publish.transport.rawValue) is already taken: the daemon chose it for container '\(containers[owner.container].name)' (line \(other.origin.location.line))",
                                    at: SourceRange(start: publish.origin.location, length: 7),
                                    hint:
                                        "Docker refuses to start the container (port is already allocated); publish a host port the daemon has not handed out from \(range)"
                                )
                                return
                            }
                            taken[key, default: [:]][port] = .some(nil)
                            held.append((key, port))
                        }
                        continue
                    }
                    var ports: [Bool: UInt16] = [:]
                    for key in keys(publish) {
                        var candidate = last[key].map { $0 >= range.last ? range.first : $0 + 1 } ?? range.first
                        var tries = 0
                        while holder(candidate, key) != nil && tries < range.count {
                            candidate = candidate >= range.last ? range.first : candidate + 1
                            tries += 1
                        }
                        guard tries < range.count else {
                            error(
                                "no free port left in the ephemeral range \(range)",
                                at: SourceRange(start: publish.origin.location, length: 1),
                                hint: "widen 'ephemeral-ports' in the host block or publish fixed host ports")
                            return
                        }
                        taken[key, default: [:]][candidate] = (c, p)
                        last[key] = candidate
                        held.append((key, candidate))
                        ports[key.ipv6] = candidate
                    }
                    guard let port = ports[false] ?? ports[true] else { continue }
                    containers[c].publishes[p].hostPorts = PortRange(port)
                    containers[c].publishes[p].hostPorts6 = ports[true].flatMap { $0 == port ? nil : PortRange($0) }
                }
            }
        }
    }

    mutating func checkPublishConflicts() {
        struct Binding: Hashable {
            let address: IPAddress?
            let transport: TransportProtocol
            let port: UInt16
        }
        /// A publish by position: a host publishes hundreds of thousands of ports, and a copy of
        /// the publish per port cost more memory than everything else the checker keeps.
        struct Holder {
            let container: Int32
            let publish: Int32
        }
        // Who holds each host port, by address; all addresses (nil) clash with every address.
        var holders: [Binding: Holder] = [:]
        var anyAddress: [TransportProtocol: [UInt16: Holder]] = [:]
        var someAddress: [TransportProtocol: [UInt16: Holder]] = [:]
        // A container only on internal networks maps nothing, so it holds no host port.
        for (containerIndex, container) in containers.enumerated()
        where container.gatewayAttachment(network: network) != nil {
            // Daemon-chosen ports cannot clash: the allocator skips taken ports and refuses fixed
            // ones it already handed out.
            for (publishIndex, publish) in container.publishes.enumerated() where !publish.hostPortIsEphemeral {
                let address = boundAddress(publish, of: container)
                let holder = Holder(container: Int32(containerIndex), publish: Int32(publishIndex))
                var clash: Holder?
                for port in publish.hostPorts.first...publish.hostPorts.last where clash == nil {
                    clash =
                        address == nil
                        ? anyAddress[publish.transport]?[port] ?? someAddress[publish.transport]?[port]
                        : holders[Binding(address: address, transport: publish.transport, port: port)]
                            ?? anyAddress[publish.transport]?[port]
                }
                if let clash {
                    let owner = containers[Int(clash.container)]
                    let other = owner.publishes[Int(clash.publish)]
                    error(
                        "host port \(publish.hostPorts)/\(publish.transport.rawValue) is already published by container '\(owner.name)' (line \(other.origin.location.line))",
                        at: SourceRange(start: publish.origin.location, length: 7),
                        hint: "two publishes cannot share a host address, port and protocol")
                }
                for port in publish.hostPorts.first...publish.hostPorts.last {
                    if address == nil {
                        anyAddress[publish.transport, default: [:]][port] =
                            anyAddress[publish.transport]?[port] ?? holder
                    } else {
                        let binding = Binding(address: address, transport: publish.transport, port: port)
                        holders[binding] = holders[binding] ?? holder
                        someAddress[publish.transport, default: [:]][port] =
                            someAddress[publish.transport]?[port] ?? holder
                    }
                }
            }
        }
    }
}
