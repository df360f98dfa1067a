import Foundation
import PortcullisNet

extension Inventory {
    /// An inventory in the order policies are written: the default bridge first, then networks
    /// by creation time; containers by start time (names break ties).
    public static func assembled(
        source: String, daemon: Daemon?, networks: [Network], containers: [Container]
    ) -> Inventory {
        let orderedNetworks = networks.sorted { a, b in
            a.isDefault != b.isDefault ? a.isDefault : (a.created, a.name) < (b.created, b.name)
        }
        let orderedContainers = containers.sorted { a, b in (a.started, a.name) < (b.started, b.name) }
        return Inventory(source: source, daemon: daemon, networks: orderedNetworks, containers: orderedContainers)
    }

    /// What `docker inspect` and `docker network inspect` print: each file an array of
    /// containers and networks (or one of them), told apart by their fields. Stopped containers
    /// and networks of other drivers than bridge are left out.
    public static func fromInspectOutput(_ files: [(text: String, source: String)]) throws(InventoryError) -> Inventory
    {
        var networks: [Network] = []
        var containers: [Container] = []
        for file in files {
            let document = try JSONNode.parse(file.text, source: file.source)
            let objects = if case .array = document.value { try document.array() } else { [document] }
            for object in objects {
                let hasSettings = try object.optional("NetworkSettings") != nil
                let hasState = try object.optional("State") != nil
                let hasIPAM = try object.optional("IPAM") != nil
                let hasDriver = try object.optional("Driver") != nil
                if hasSettings || hasState {
                    if let container = try EngineDocuments.container(object) { containers.append(container) }
                } else if hasIPAM || hasDriver {
                    if let network = try EngineDocuments.network(object) { networks.append(network) }
                } else {
                    throw object.failure(
                        "neither a container nor a network (no NetworkSettings, State, IPAM or Driver)")
                }
            }
        }
        return assembled(source: "docker-inspect", daemon: nil, networks: networks, containers: containers)
    }

    /// The facts the seed's Ansible module prints, one `key = value` a line, a container per
    /// `name` line: `name`, `ip_address`, `prefix_len`, `gateway`, `mac_address`, `bridge`.
    /// Networks are the bridges named, with the subnet and gateway their containers give.
    public static func fromAnsibleFacts(_ files: [(text: String, source: String)]) throws(InventoryError) -> Inventory {
        var records: [(facts: [String: String], at: String)] = []
        for file in files {
            for (number, line) in file.text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
                let at = "\(file.source):\(number + 1)"
                guard let equals = trimmed.firstIndex(of: "=") else {
                    throw InventoryError("\(at): expected 'key = value'")
                }
                let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
                let value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                if key == "name" { records.append(([:], at)) }
                guard !records.isEmpty else { throw InventoryError("\(at): '\(key)' before the first 'name'") }
                guard records[records.count - 1].facts.updateValue(value, forKey: key) == nil else {
                    throw InventoryError("\(at): '\(key)' given twice for one container")
                }
            }
        }
        var networks: [Network] = []
        var containers: [Container] = []
        for (facts, at) in records {
            func fact(_ key: String) throws(InventoryError) -> String {
                guard let value = facts[key], !value.isEmpty else {
                    throw InventoryError("\(at): container without '\(key)'")
                }
                return value
            }
            let addressText = try fact("ip_address") + "/" + fact("prefix_len")
            guard case .success(let address) = IPPrefix.parse(Substring(addressText)), address.address.family == .ipv4
            else { throw InventoryError("\(at): '\(addressText)' is not an IPv4 address and prefix length") }
            let bridge = try fact("bridge")
            if let problem = InterfaceName.validate(bridge) {
                throw InventoryError("\(at): bridge '\(bridge)' is not an interface name (\(problem))")
            }
            let networkName = bridge == "docker0" ? "bridge" : bridge
            if !networks.contains(where: { $0.bridge == bridge }) {
                var network = Network(name: networkName, id: "", bridge: bridge)
                network.isDefault = bridge == "docker0"
                let gateway = try facts["gateway"].map { text throws(InventoryError) in
                    guard let gateway = IPAddress(text) else {
                        throw InventoryError("\(at): gateway '\(text)' is not an address")
                    }
                    return gateway
                }
                network.subnets = [Subnet(prefix: address.network, gateway: gateway)]
                networks.append(network)
            }
            var container = Container(name: try fact("name"), id: "")
            var endpoint = Endpoint(network: networkName, networkID: "", ipv4: address)
            if let mac = facts["mac_address"], !mac.isEmpty {
                guard EngineDocuments.isMAC(mac) else { throw InventoryError("\(at): '\(mac)' is not a MAC address") }
                endpoint.mac = mac.lowercased()
            }
            container.endpoints = [endpoint]
            containers.append(container)
        }
        // The facts carry no times: networks and containers keep the order they were listed in.
        return Inventory(source: "ansible-facts", networks: networks, containers: containers)
    }
}
