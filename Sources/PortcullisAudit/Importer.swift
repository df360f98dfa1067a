import PortcullisIR
import PortcullisNet

/// Turns a host that Docker 20.10 (the classic layout) has been managing into a policy that
/// describes it: networks with their bridges, subnets and options, containers with addresses
/// and publishes. What a ruleset cannot tell (container names, containers without published
/// ports, subnets of networks that neither masquerade nor are internal) is named
/// deterministically or reported, never guessed silently.
public struct DockerImporter: Sendable {
    public let ruleset: Ruleset

    public init(ruleset: Ruleset) { self.ruleset = ruleset }

    public enum Layout: String, Sendable {
        case docker15 = "docker-1.5"
        case docker2010 = "docker-20.10"
        case docker28 = "docker-28"
    }

    /// Which Docker era wrote the ruleset, from the chains it has.
    public var detectedLayout: Layout? {
        guard let filter = ruleset.table(.ip, "filter"), filter.chain("DOCKER") != nil else { return nil }
        if filter.chain("DOCKER-FORWARD") != nil { return .docker28 }
        if filter.chain("DOCKER-ISOLATION-STAGE-1") != nil { return .docker2010 }
        return .docker15
    }

    public struct Result: Sendable {
        public let policy: String
        /// What could not be imported, one line each.
        public let notImported: [String]
    }

    struct ImportedNetwork {
        let bridge: String
        var subnet: IPPrefix?
        var `internal` = false
        var icc = true
        var masquerade = false
    }

    struct ImportedPublish {
        let hostAddress: IPAddress?
        let hostPort: UInt16
        let containerPort: UInt16
        let transport: TransportProtocol
    }

    static let ephemeral = PortRange(32768, 60999)

    public func importPolicy() -> Result {
        var notImported: [String] = []
        let filter = ruleset.table(.ip, "filter")
        let nat = ruleset.table(.ip, "nat")
        // Networks in creation order: Docker inserts each network's isolation rules at the top
        // of DOCKER-ISOLATION-STAGE-1, so the chain lists them newest first.
        var networks: [ImportedNetwork] = []
        func index(_ bridge: String) -> Int {
            if let existing = networks.firstIndex(where: { $0.bridge == bridge }) { return existing }
            networks.append(ImportedNetwork(bridge: bridge))
            return networks.count - 1
        }
        for rule in (filter?.chain("DOCKER-ISOLATION-STAGE-1")?.rules ?? []).reversed() {
            switch (rule.matches.first, rule.action) {
            case (.interface(.source, let bridge, false), .jump("DOCKER-ISOLATION-STAGE-2")?):
                _ = index(bridge)
            case (.address(.source, let subnet, true), .drop?):
                if case .interface(.destination, let bridge, false)? = rule.matches.dropFirst().first {
                    let at = index(bridge)
                    networks[at].internal = true
                    networks[at].subnet = subnet
                }
            default: break
            }
        }
        for rule in filter?.chain("FORWARD")?.rules ?? [] where rule.matches.count == 2 {
            if case .interface(.source, let input, false) = rule.matches[0],
                case .interface(.destination, let output, false) = rule.matches[1], input == output,
                let at = networks.firstIndex(where: { $0.bridge == input })
            {
                networks[at].icc = rule.action == .accept
            }
        }
        for rule in nat?.chain("POSTROUTING")?.rules ?? [] where rule.action == .masquerade {
            if case .address(.source, let subnet, false) = rule.matches.first, !subnet.isHost,
                case .interface(.destination, let bridge, true)? = rule.matches.dropFirst().first,
                let at = networks.firstIndex(where: { $0.bridge == bridge })
            {
                networks[at].subnet = subnet
                networks[at].masquerade = true
            }
        }
        // The default bridge is created when the daemon starts.
        if let docker0 = networks.firstIndex(where: { $0.bridge == "docker0" }) {
            networks.insert(networks.remove(at: docker0), at: 0)
        }
        let proxyOff =
            nat?.chain("OUTPUT")?.rules.contains {
                $0.action == .jump("DOCKER") && !$0.matches.contains { if case .address = $0 { true } else { false } }
            } ?? false

        // Containers, in the order their published ports were appended.
        var containers: [(address: IPAddress, publishes: [ImportedPublish])] = []
        for rule in nat?.chain("DOCKER")?.rules ?? [] {
            guard case .dnat(let address, let ports)? = rule.action, let containerPort = ports?.first else { continue }
            var hostAddress: IPAddress?
            var hostPort: UInt16?
            var transport: TransportProtocol?
            for match in rule.matches {
                switch match {
                case .address(.destination, let prefix, false): hostAddress = prefix.address
                case .port(.destination, let range): hostPort = range.first
                case .transport(let t, false): transport = t
                default: break
                }
            }
            guard let hostPort, let transport else {
                notImported.append("nat DOCKER: a DNAT rule without a port")
                continue
            }
            let publish = ImportedPublish(
                hostAddress: hostAddress, hostPort: hostPort, containerPort: containerPort, transport: transport)
            if let at = containers.firstIndex(where: { $0.address == address }) {
                containers[at].publishes.append(publish)
            } else {
                containers.append((address, [publish]))
            }
        }
        if let user = filter?.chain("DOCKER-USER")?.rules.filter({ !($0.matches.isEmpty && $0.action == .return) }),
            !user.isEmpty
        {
            notImported.append("\(user.count) rule(s) in DOCKER-USER (not Docker's; express them as allow/deny/egress)")
        }

        var lines = ["# Imported from a host managed by Docker (classic layout, as Docker 20.10 writes it)."]
        lines.append("# Containers are named after their address: a ruleset does not hold container names;")
        lines.append("# containers without published ports leave no rules and are not listed; host ports in")
        lines.append("# 32768-60999 (the ephemeral range) are taken as chosen by the daemon (-P).")
        var host: [String] = ["    layout docker-20.10"]
        if proxyOff { host.append("    userland-proxy off") }
        if filter?.chain("FORWARD")?.base?.policy == .accept { host.append("    forward-policy accept") }
        lines += ["", "host {"] + host + ["}"]
        var names: [String: String] = [:]
        for (number, network) in networks.enumerated() {
            guard let subnet = network.subnet else {
                notImported.append(
                    "network on bridge \(network.bridge): its subnet is not in the rules (no MASQUERADE)")
                continue
            }
            let name = network.bridge == "docker0" ? "bridge" : "net\(number)-" + network.bridge
            names[network.bridge] = name
            lines += ["", "network \(name) {", "    bridge \(network.bridge)", "    subnet \(subnet.network)"]
            if network.internal { lines.append("    internal") }
            if !network.icc { lines.append("    icc deny") }
            if !network.masquerade && !network.internal { lines.append("    masquerade off") }
            lines.append("}")
        }
        for (address, publishes) in containers {
            guard let network = networks.first(where: { $0.subnet?.contains(address) == true }),
                let networkName = names[network.bridge]
            else {
                notImported.append("container \(address): no imported network holds its address")
                continue
            }
            let name = "c-" + address.description.split(separator: ".").joined(separator: "-")
            lines += ["", "container \(name) {", "    attach \(networkName) \(address)"]
            for publish in publishes {
                // Docker's default ephemeral range holds the ports it chose itself (-P, -p PORT):
                // imported as such, the allocator picks them again and in Docker's order.
                if publish.hostAddress == nil && Self.ephemeral.contains(publish.hostPort) {
                    lines.append("    publish \(publish.containerPort)/\(publish.transport.rawValue)")
                    continue
                }
                let host = publish.hostAddress.map { "\($0):" } ?? ""
                lines.append(
                    "    publish \(host)\(publish.hostPort) -> \(publish.containerPort)/\(publish.transport.rawValue)")
            }
            lines.append("}")
        }
        for line in notImported { lines.append("# not imported: \(line)") }
        return Result(policy: lines.joined(separator: "\n") + "\n", notImported: notImported)
    }
}
