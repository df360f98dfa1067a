import PortcullisNet

/// Reads the Engine API's documents into the inventory: `/version` and `/info`,
/// `/networks/{id}` (the objects `docker network inspect` prints) and `/containers/{id}/json`
/// (the objects `docker inspect` prints). Fields the firewall does not depend on are ignored;
/// a field it does depend on that has the wrong type is an error naming its JSON path.
public enum EngineDocuments {
    /// Option keys of the bridge driver (moby's libnetwork/drivers/bridge).
    enum BridgeOption {
        static let name = "com.docker.network.bridge.name"
        static let defaultBridge = "com.docker.network.bridge.default_bridge"
        static let icc = "com.docker.network.bridge.enable_icc"
        static let masquerade = "com.docker.network.bridge.enable_ip_masquerade"
        static let hostBinding = "com.docker.network.bridge.host_binding_ipv4"
        static let gatewayMode = "com.docker.network.bridge.gateway_mode_ipv4"
    }

    /// The daemon, from `/version` and (when it was asked) `/info`.
    public static func daemon(version: String, info: String?) throws(InventoryError) -> Inventory.Daemon {
        let versionNode = try JSONNode.parse(version, source: "/version")
        var daemon = Inventory.Daemon(
            version: try versionNode.required("Version").string(),
            apiVersion: try versionNode.required("ApiVersion").string())
        if let info {
            let node = try JSONNode.parse(info, source: "/info")
            daemon.firewallBackend = try node.optional("FirewallBackend")?.optional("Driver")?.string()
            daemon.liveRestore = try node.optional("LiveRestoreEnabled")?.bool()
        }
        return daemon
    }

    /// A network; nil for other drivers than bridge (host, none, overlay, macvlan), which
    /// write no bridge rules.
    static func network(_ node: JSONNode) throws(InventoryError) -> Inventory.Network? {
        let driver = try node.optional("Driver")?.string() ?? "bridge"
        guard driver == "bridge" else { return nil }
        let id = try node.required("Id").string()
        let options = try node.optional("Options")?.stringMap() ?? [:]
        let bridge = options[BridgeOption.name] ?? "br-" + id.prefix(12)
        if let problem = InterfaceName.validate(bridge) {
            throw node.failure("bridge '\(bridge)' is not an interface name (\(problem))")
        }
        var network = Inventory.Network(name: try node.required("Name").string(), id: id, bridge: bridge)
        network.created = try node.optional("Created")?.string() ?? ""
        network.internal = try node.optional("Internal")?.bool() ?? false
        network.enableIPv6 = try node.optional("EnableIPv6")?.bool() ?? false
        network.labels = try node.optional("Labels")?.stringMap() ?? [:]
        let optionsNode = try node.optional("Options")
        func flag(_ key: String) throws(InventoryError) -> Bool? {
            guard let text = options[key] else { return nil }
            // Go's strconv.ParseBool, which the daemon reads these options with.
            switch text {
            case "1", "t", "T", "true", "TRUE", "True": return true
            case "0", "f", "F", "false", "FALSE", "False": return false
            default: throw InventoryError("\(optionsNode?.path(of: key) ?? node.path): '\(text)' is not true or false")
            }
        }
        network.isDefault = try flag(BridgeOption.defaultBridge) ?? false
        network.icc = try flag(BridgeOption.icc) ?? true
        network.masquerade = try flag(BridgeOption.masquerade) ?? true
        if let binding = options[BridgeOption.hostBinding], !binding.isEmpty {
            guard let address = IPAddress(binding) else {
                throw InventoryError(
                    "\(optionsNode?.path(of: BridgeOption.hostBinding) ?? node.path): '\(binding)' is not an IP address"
                )
            }
            network.hostBinding = address.isUnspecified ? nil : address
        }
        network.gatewayMode = options[BridgeOption.gatewayMode]
        for config in try node.optional("IPAM")?.optional("Config")?.array() ?? [] {
            let prefix = try config.required("Subnet").prefix()
            let gateway = try config.optional("Gateway").flatMap { node throws(InventoryError) in
                try node.string().isEmpty ? nil : try node.address()
            }
            network.subnets.append(Inventory.Subnet(prefix: prefix.network, gateway: gateway))
        }
        // IPv4 first, as the policy writes them; the daemon lists them in its own order.
        network.subnets =
            network.subnets.filter { $0.prefix.address.family == .ipv4 }
            + network.subnets.filter { $0.prefix.address.family == .ipv6 }
        return network
    }

    /// A container; nil when it is not running (it has no rules then).
    static func container(_ node: JSONNode) throws(InventoryError) -> Inventory.Container? {
        let state = try node.optional("State")
        guard try state?.optional("Running")?.bool() ?? true else { return nil }
        var name = try node.required("Name").string()
        if name.hasPrefix("/") { name.removeFirst() }
        var container = Inventory.Container(name: name, id: try node.required("Id").string())
        container.started = try state?.optional("StartedAt")?.string() ?? ""
        let config = try node.optional("Config")
        container.labels = try config?.optional("Labels")?.stringMap() ?? [:]
        container.exposed = try (config?.optional("ExposedPorts")?.members() ?? [])
            .map { entry throws(InventoryError) in try JSONNode.portSpec(entry.key, at: entry.node.path) }.sorted()
        let hostConfig = try node.optional("HostConfig")
        container.publishAll = try hostConfig?.optional("PublishAllPorts")?.bool() ?? false
        container.portBindings = try portBindings(hostConfig?.optional("PortBindings")).sorted()
        let settings = try node.optional("NetworkSettings")
        container.ports = try boundPorts(settings?.optional("Ports")).sorted()
        var mode = try hostConfig?.optional("NetworkMode")?.string() ?? ""
        if mode == "default" { mode = "bridge" }
        let endpoints = try (settings?.optional("Networks")?.members() ?? []).map {
            entry throws(InventoryError) in try endpoint(entry.node, network: entry.key)
        }
        container.endpoints =
            endpoints.filter { $0.network == mode }
            + endpoints.filter { $0.network != mode }.sorted { $0.network < $1.network }
        return container
    }

    /// `HostConfig.PortBindings`: `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`, null
    /// for a port with no binding (moby's own examples have one).
    static func portBindings(_ node: JSONNode?) throws(InventoryError) -> [Inventory.PortBinding] {
        var bindings: [Inventory.PortBinding] = []
        for (key, list) in try node?.members() ?? [] where list.value != .null {
            let spec = try JSONNode.portSpec(key, at: list.path)
            for binding in try list.array() {
                let hostIP = try binding.optional("HostIp")
                let hostPort = try binding.optional("HostPort")
                bindings.append(
                    Inventory.PortBinding(
                        container: spec, hostIP: try hostIP.flatMap(optionalAddress),
                        hostPorts: try hostPort.flatMap(optionalPorts)))
            }
        }
        return bindings
    }

    /// `NetworkSettings.Ports`: the same shape, null for a port that is only exposed.
    static func boundPorts(_ node: JSONNode?) throws(InventoryError) -> [Inventory.BoundPort] {
        var ports: [Inventory.BoundPort] = []
        for (key, list) in try node?.members() ?? [] where list.value != .null {
            let spec = try JSONNode.portSpec(key, at: list.path)
            for binding in try list.array() {
                let hostPort = try binding.required("HostPort")
                guard let range = try optionalPorts(hostPort), range.first == range.last else {
                    throw hostPort.failure("'\(try hostPort.string())' is not a port")
                }
                let hostIP = try binding.optional("HostIp").flatMap(optionalAddress)
                ports.append(
                    Inventory.BoundPort(container: spec, hostIP: hostIP ?? IPAddress(ipv4: 0), hostPort: range.first))
            }
        }
        return ports
    }

    /// One of `NetworkSettings.Networks`.
    static func endpoint(_ node: JSONNode, network: String) throws(InventoryError) -> Inventory.Endpoint {
        var endpoint = Inventory.Endpoint(
            network: network, networkID: try node.optional("NetworkID")?.string() ?? "")
        if let address = try node.optional("IPAddress"), try !address.string().isEmpty {
            endpoint.ipv4 = try address.prefix(length: try node.required("IPPrefixLen").integer())
        }
        if let address = try node.optional("GlobalIPv6Address"), try !address.string().isEmpty {
            endpoint.ipv6 = try address.prefix(length: try node.required("GlobalIPv6PrefixLen").integer())
        }
        if let mac = try node.optional("MacAddress")?.string(), !mac.isEmpty {
            guard isMAC(mac) else { throw try node.required("MacAddress").failure("'\(mac)' is not a MAC address") }
            endpoint.mac = mac.lowercased()
        }
        return endpoint
    }

    /// Six pairs of hex digits separated by colons.
    static func isMAC(_ text: String) -> Bool {
        let pairs = text.split(separator: ":", omittingEmptySubsequences: false)
        return pairs.count == 6 && pairs.allSatisfy { $0.count == 2 && $0.allSatisfy(\.isHexDigit) }
    }

    /// An address, or nil for `""` (none given).
    static func optionalAddress(_ node: JSONNode) throws(InventoryError) -> IPAddress? {
        try node.string().isEmpty ? nil : try node.address()
    }

    /// `8080` or `8000-8010`, or nil for `""` (the daemon chooses).
    static func optionalPorts(_ node: JSONNode) throws(InventoryError) -> PortRange? {
        let text = try node.string()
        if text.isEmpty { return nil }
        guard case .success(let range) = PortRange.parse(Substring(text)) else {
            throw node.failure("'\(text)' is not a port or port range")
        }
        return range
    }
}
