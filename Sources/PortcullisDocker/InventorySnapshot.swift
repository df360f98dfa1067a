import JanssonKit
import PortcullisNet

/// The snapshot `portcullis inventory` writes and `--from inventory` reads back
/// (docs/inventory.md): a JSON object whose `portcullis-inventory` member is the format's
/// version. Keys are written in a fixed order and labels sorted, so a snapshot of an unchanged
/// host is the same text every time and can be pinned by a golden test.
extension Inventory {
    public func snapshot() -> String {
        var members: [(String, JSON)] = [
            ("portcullis-inventory", .integer(Self.formatVersion)), ("source", .string(source)),
        ]
        if let daemon {
            var fields: [(String, JSON)] = [
                ("version", .string(daemon.version)), ("api-version", .string(daemon.apiVersion)),
            ]
            if let backend = daemon.firewallBackend { fields.append(("firewall-backend", .string(backend))) }
            if let liveRestore = daemon.liveRestore { fields.append(("live-restore", .bool(liveRestore))) }
            members.append(("daemon", .object(fields)))
        }
        members.append(("networks", .array(networks.map(Self.snapshot))))
        members.append(("containers", .array(containers.map(Self.snapshot))))
        return JSON.object(members).rendered(indent: 2) + "\n"
    }

    static func snapshot(_ network: Network) -> JSON {
        var fields: [(String, JSON)] = [
            ("name", .string(network.name)), ("id", .string(network.id)), ("created", .string(network.created)),
            ("bridge", .string(network.bridge)), ("default", .bool(network.isDefault)),
            (
                "subnets",
                .array(
                    network.subnets.map { subnet in
                        .object(
                            [("subnet", .string("\(subnet.prefix)"))]
                                + (subnet.gateway.map { [("gateway", .string("\($0)"))] } ?? []))
                    })
            ),
            ("internal", .bool(network.internal)), ("ipv6", .bool(network.enableIPv6)), ("icc", .bool(network.icc)),
            ("masquerade", .bool(network.masquerade)),
        ]
        if let binding = network.hostBinding { fields.append(("host-binding", .string("\(binding)"))) }
        if let mode = network.gatewayMode { fields.append(("gateway-mode", .string(mode))) }
        fields.append(("labels", labels(network.labels)))
        return .object(fields)
    }

    static func snapshot(_ container: Container) -> JSON {
        let endpoints = container.endpoints.map { endpoint -> JSON in
            var fields: [(String, JSON)] = [
                ("network", .string(endpoint.network)), ("network-id", .string(endpoint.networkID)),
            ]
            if let ipv4 = endpoint.ipv4 { fields.append(("ipv4", .string("\(ipv4)"))) }
            if let ipv6 = endpoint.ipv6 { fields.append(("ipv6", .string("\(ipv6)"))) }
            if let mac = endpoint.mac { fields.append(("mac", .string(mac))) }
            return .object(fields)
        }
        let bindings = container.portBindings.map { binding -> JSON in
            .object([
                ("container", .string("\(binding.container)")),
                ("host-ip", binding.hostIP.map { .string("\($0)") } ?? .null),
                ("host-ports", binding.hostPorts.map { .string("\($0)") } ?? .null),
            ])
        }
        let ports = container.ports.map { port -> JSON in
            .object([
                ("container", .string("\(port.container)")), ("host-ip", .string("\(port.hostIP)")),
                ("host-port", .integer(Int(port.hostPort))),
            ])
        }
        return .object([
            ("name", .string(container.name)), ("id", .string(container.id)), ("started", .string(container.started)),
            ("labels", labels(container.labels)), ("endpoints", .array(endpoints)),
            ("exposed", .array(container.exposed.map { .string("\($0)") })),
            ("publish-all", .bool(container.publishAll)),
            ("port-bindings", .array(bindings)), ("ports", .array(ports)),
        ])
    }

    static func labels(_ labels: [String: String]) -> JSON {
        .object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
    }

    /// Reads a snapshot back; a newer format version, or a value of the wrong kind, is an
    /// error naming its JSON path.
    public static func fromSnapshot(_ text: String, source: String) throws(InventoryError) -> Inventory {
        let root = try JSONNode.parse(text, source: source)
        let version = try root.required("portcullis-inventory")
        guard try version.integer() == formatVersion else {
            throw version.failure(
                "inventory format \(try version.integer()) is not \(formatVersion), the one this portcullis reads")
        }
        var inventory = Inventory(source: try root.required("source").string())
        if let daemon = try root.optional("daemon") {
            inventory.daemon = Daemon(
                version: try daemon.required("version").string(),
                apiVersion: try daemon.required("api-version").string(),
                firewallBackend: try daemon.optional("firewall-backend")?.string(),
                liveRestore: try daemon.optional("live-restore")?.bool())
        }
        inventory.networks = try root.required("networks").array().map(network)
        inventory.containers = try root.required("containers").array().map(container)
        return inventory
    }

    static func network(_ node: JSONNode) throws(InventoryError) -> Network {
        var network = Network(
            name: try node.required("name").string(), id: try node.required("id").string(),
            bridge: try node.required("bridge").string())
        if let problem = InterfaceName.validate(network.bridge) {
            throw try node.required("bridge").failure("'\(network.bridge)' is not an interface name (\(problem))")
        }
        network.created = try node.optional("created")?.string() ?? ""
        network.isDefault = try node.optional("default")?.bool() ?? false
        network.subnets = try node.required("subnets").array().map { subnet throws(InventoryError) in
            Subnet(
                prefix: try subnet.required("subnet").prefix().network,
                gateway: try subnet.optional("gateway")?.address())
        }
        network.internal = try node.optional("internal")?.bool() ?? false
        network.enableIPv6 = try node.optional("ipv6")?.bool() ?? false
        network.icc = try node.optional("icc")?.bool() ?? true
        network.masquerade = try node.optional("masquerade")?.bool() ?? true
        network.hostBinding = try node.optional("host-binding")?.address()
        network.gatewayMode = try node.optional("gateway-mode")?.string()
        network.labels = try node.optional("labels")?.stringMap() ?? [:]
        return network
    }

    static func container(_ node: JSONNode) throws(InventoryError) -> Container {
        var container = Container(name: try node.required("name").string(), id: try node.required("id").string())
        container.started = try node.optional("started")?.string() ?? ""
        container.labels = try node.optional("labels")?.stringMap() ?? [:]
        container.endpoints = try (node.optional("endpoints")?.array() ?? []).map { endpoint throws(InventoryError) in
            var read = Endpoint(
                network: try endpoint.required("network").string(),
                networkID: try endpoint.optional("network-id")?.string() ?? "",
                ipv4: try endpoint.optional("ipv4")?.prefix(), ipv6: try endpoint.optional("ipv6")?.prefix())
            if let mac = try endpoint.optional("mac") {
                guard EngineDocuments.isMAC(try mac.string()) else { throw mac.failure("not a MAC address") }
                read.mac = try mac.string().lowercased()
            }
            return read
        }
        container.exposed = try (node.optional("exposed")?.array() ?? []).map { port throws(InventoryError) in
            try JSONNode.portSpec(try port.string(), at: port.path)
        }
        container.publishAll = try node.optional("publish-all")?.bool() ?? false
        container.portBindings = try (node.optional("port-bindings")?.array() ?? []).map {
            binding throws(InventoryError) in
            let spec = try binding.required("container")
            return PortBinding(
                container: try JSONNode.portSpec(try spec.string(), at: spec.path),
                hostIP: try binding.optional("host-ip")?.address(),
                hostPorts: try binding.optional("host-ports").flatMap(EngineDocuments.optionalPorts))
        }
        container.ports = try (node.optional("ports")?.array() ?? []).map { port throws(InventoryError) in
            let spec = try port.required("container")
            let hostPort = try port.required("host-port")
            guard let number = UInt16(exactly: try hostPort.integer()), number > 0 else {
                throw hostPort.failure("not a port")
            }
            return BoundPort(
                container: try JSONNode.portSpec(try spec.string(), at: spec.path),
                hostIP: try port.required("host-ip").address(), hostPort: number)
        }
        return container
    }
}
