import PortcullisDocker
import PortcullisLayouts
import PortcullisNet

/// A Docker host's inventory as the policy that compiles to the rules its daemon wrote: Docker's
/// own names, networks in creation order, containers in start order, Compose projects and
/// services as groups. What the inventory cannot tell (daemon flags the Engine API does not
/// report) comes from the host's rules when they were read, else it is written as assumed.
public enum InventoryImport {
    /// The layout for a daemon: `docker-20.10` for 18.06 to 22.x, `docker-23` for 23 and 24,
    /// `docker-25` for 25 to 27 (`Docker2010Layout.Era`), `docker-28`, `docker-29`
    /// (with the nftables backend when `/info` says so); nil for older daemons.
    public static func layout(for daemon: Inventory.Daemon) -> (layout: String, backend: String?)? {
        guard let major = daemon.majorVersion else { return nil }
        switch major {
        case 29...:
            return (Docker29Layout.name, daemon.firewallBackend == "nftables" ? "nftables" : nil)
        case 28: return (Docker28Layout.name, nil)
        case 18...27:
            // 18.06 wrote what 20.10 writes; 18.03 and before did not (docs/layouts.md).
            let minor = daemon.version.split(separator: ".").dropFirst().first.flatMap { Int($0.prefix(2)) } ?? 0
            return major == 18 && minor < 6 ? nil : (Docker2010Layout.Era(major: major).name, nil)
        default: return nil
        }
    }

    /// What the daemon's flags did to the rules, when the host's rules were read: the host
    /// settings an import of those rules found (`userland-proxy off`, `ip6tables on`).
    public typealias DaemonFlags = [ImportedHost.HostSetting]

    /// - Parameters:
    ///   - origin: where the inventory was read, for the header (`the Docker daemon at unix:///…`).
    ///   - daemonFlags: nil when the host's rules were not read: the defaults are assumed.
    public static func importHost(
        _ inventory: Inventory, layout: String, backend: String?, daemonFlags: DaemonFlags?, origin: String
    ) -> ImportedHost {
        var imported = ImportedHost()
        imported.header = [
            "Imported from \(origin)" + (inventory.daemon.map { ": Docker \($0.version), API \($0.apiVersion)" } ?? "")
                + "."
        ]
        imported.header.append("Names are Docker's; networks in creation order, containers in start order.")
        imported.settings = [.layout(layout)] + (backend.map { [.backend($0)] } ?? [])
        var names = PolicyNames()
        let networks = declareNetworks(inventory.networks, names: &names, into: &imported)
        declareContainers(inventory.containers, networks: networks, names: &names, into: &imported)
        declareComposeGroups(inventory.containers, names: &names, into: &imported)
        declareDaemonFlags(daemonFlags, inventory: inventory, layout: layout, into: &imported)
        imported.header += names.renamed
        return imported
    }

    /// The networks written, by Docker's name.
    static func declareNetworks(
        _ networks: [Inventory.Network], names: inout PolicyNames, into imported: inout ImportedHost
    ) -> [String: (policyName: String, network: Inventory.Network)] {
        var written: [String: (String, Inventory.Network)] = [:]
        for network in networks {
            guard let subnet4 = network.subnet(.ipv4) else {
                imported.notImported.append("network \(network.name): it has no IPv4 subnet")
                continue
            }
            let name = names.claim(network.name, kind: "network")
            let subnet6 = network.enableIPv6 ? network.subnet(.ipv6) : nil
            var declared = ImportedHost.Network(
                name: name, bridge: network.bridge,
                subnets: ([subnet4] + (subnet6.map { [$0] } ?? [])).map { "\($0.prefix)" })
            declared.gateways = [subnet4, subnet6].compactMap { subnet in
                guard let subnet, let gateway = subnet.gateway, gateway != subnet.prefix.address.adding(1) else {
                    return nil
                }
                return "\(gateway)"
            }
            declared.internal = network.internal
            declared.iccDeny = !network.icc
            let mode = network.gatewayMode.flatMap { $0 == "nat" || $0.isEmpty ? nil : $0 }
            declared.masqueradeOff = !network.masquerade && !network.internal && mode != "routed"
            declared.gatewayMode = mode
            declared.hostBinding = network.hostBinding.map(\.description)
            imported.networks.append(declared)
            written[network.name] = (name, network)
        }
        return written
    }

    static func declareContainers(
        _ containers: [Inventory.Container], networks: [String: (policyName: String, network: Inventory.Network)],
        names: inout PolicyNames, into imported: inout ImportedHost
    ) {
        for container in containers {
            var attachments: [ImportedHost.Attachment] = []
            var publishing = false
            for endpoint in container.endpoints {
                guard let (network, read) = networks[endpoint.network], let ipv4 = endpoint.ipv4 else {
                    imported.notImported.append(
                        "container \(container.name): its endpoint on network \(endpoint.network) (not a bridge network with an IPv4 subnet, or no IPv4 address)"
                    )
                    continue
                }
                attachments.append(
                    ImportedHost.Attachment(network: network, address: "\(ipv4.address)", mac: endpoint.mac))
                if let ipv6 = endpoint.ipv6, read.enableIPv6 {
                    attachments.append(ImportedHost.Attachment(network: network, address: "\(ipv6.address)"))
                }
                publishing = publishing || !read.internal
            }
            guard !attachments.isEmpty else {
                imported.notImported.append("container \(container.name): on no imported network")
                continue
            }
            var declared = ImportedHost.Container(
                name: names.claim(container.name, kind: "container"), attachments: attachments)
            declared.exposed = container.exposed.map(\.description)
            if publishing {
                declared.publishes = publishes(of: container, assumed: &imported.assumed)
                declared.publishAll = container.publishAll
            } else if !container.portBindings.isEmpty || container.publishAll {
                imported.notImported.append(
                    "container \(container.name): its published ports (it is on internal networks only, so Docker maps none)"
                )
            }
            imported.containers.append(declared)
        }
    }

    /// The container's `-p` bindings as publishes, exactly as asked: host address and port,
    /// or the daemon's choice; consecutive ports become one range.
    static func publishes(of container: Inventory.Container, assumed: inout [String]) -> [ImportedHost.Publish] {
        var runs: [(hostIP: IPAddress?, host: PortRange?, container: PortRange, transport: TransportProtocol)] = []
        for binding in container.portBindings {
            var hostPorts = binding.hostPorts
            if let range = hostPorts, range.first != range.last {
                // `-p 8000-8010:80`: the daemon took one port of the range; the policy names it.
                let bound = container.ports.first { $0.container == binding.container }?.hostPort ?? range.first
                assumed.append(
                    "container \(container.name): \(binding.container) asked for a host port in \(range); the one the daemon bound, \(bound), is written"
                )
                hostPorts = PortRange(bound)
            }
            let port = binding.container.port
            if let last = runs.last, let lastHost = last.host, let host = hostPorts, last.hostIP == binding.hostIP,
                last.transport == binding.container.transport, last.container.last &+ 1 == port,
                lastHost.last &+ 1 == host.first
            {
                runs[runs.count - 1].host = PortRange(lastHost.first, host.first)
                runs[runs.count - 1].container = PortRange(last.container.first, port)
                continue
            }
            runs.append((binding.hostIP, hostPorts, PortRange(port), binding.container.transport))
        }
        return runs.map { run in
            let containerSide = "\(run.container)/\(run.transport.rawValue)"
            guard let host = run.host else { return ImportedHost.Publish(containerSide: containerSide) }
            let address = run.hostIP.map { $0.family == .ipv6 ? "[\($0)]:" : "\($0):" } ?? ""
            return ImportedHost.Publish(hostSide: address + "\(host)", containerSide: containerSide)
        }
    }

    /// A group per Compose project and per service (`PROJECT-SERVICE`), members in start order.
    static func declareComposeGroups(
        _ containers: [Inventory.Container], names: inout PolicyNames, into imported: inout ImportedHost
    ) {
        let written = Dictionary(
            imported.containers.map { ($0.name, true) }, uniquingKeysWith: { first, _ in first })
        var projects: [(project: String, services: [(service: String, members: [String])])] = []
        for container in containers {
            guard let (project, service) = container.composeService, let name = names.policyName(of: container.name),
                written[name] != nil
            else { continue }
            let at =
                projects.firstIndex { $0.project == project }
                ?? {
                    projects.append((project, []))
                    return projects.count - 1
                }()
            if let serviceAt = projects[at].services.firstIndex(where: { $0.service == service }) {
                projects[at].services[serviceAt].members.append(name)
            } else {
                projects[at].services.append((service, [name]))
            }
        }
        for (project, services) in projects {
            imported.groups.append(
                ImportedHost.Group(
                    name: names.claim(project, kind: "compose project"), members: services.flatMap(\.members)))
            for (service, members) in services {
                imported.groups.append(
                    ImportedHost.Group(
                        name: names.claim("\(project)-\(service)", kind: "compose service"), members: members))
            }
        }
    }

    /// `userland-proxy` and `ip6tables` are daemon flags the Engine API does not report: taken
    /// from the host's rules, else Docker's defaults, said to be assumed where they matter.
    static func declareDaemonFlags(
        _ flags: DaemonFlags?, inventory: Inventory, layout: String, into imported: inout ImportedHost
    ) {
        if let flags {
            imported.settings += flags.filter { $0 == .userlandProxyOff || $0 == .ip6tablesOn }
            return
        }
        if inventory.containers.contains(where: { !$0.portBindings.isEmpty || $0.publishAll }) {
            imported.assumed.append(
                "userland-proxy on (Docker's default): the Engine API does not report --userland-proxy; import with the host's rules (--rules) to read it"
            )
        }
        if Docker2010Layout.names.contains(layout) && inventory.networks.contains(where: { $0.enableIPv6 }) {
            imported.assumed.append(
                "ip6tables off (Docker 20.10's default): the Engine API does not report --ip6tables; import with the host's rules (--rules) to read it"
            )
        }
    }
}

/// Docker's names as policy names: the language wants a letter first, letters, digits, `-`,
/// `_` and `.` after it, at most 64 characters, one namespace for containers, networks and
/// groups, and not `any`, `outside` or `host`. Names that need changing are changed as little
/// as possible, and the header says how.
struct PolicyNames {
    private var taken: Set<String> = []
    private var byDockerName: [String: String] = [:]
    /// Header lines for the names that changed.
    private(set) var renamed: [String] = []

    static let reserved: Set<String> = ["any", "outside", "host"]

    mutating func claim(_ dockerName: String, kind: String) -> String {
        var base = String(
            dockerName.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "-" }.prefix(64))
        if !(base.first?.isLetter ?? false) || Self.reserved.contains(base) { base = String(("d-" + base).prefix(64)) }
        var name = base
        var suffix = 2
        while taken.contains(name) {
            name = String(base.prefix(60)) + "-\(suffix)"
            suffix += 1
        }
        taken.insert(name)
        if kind == "container" { byDockerName[dockerName] = name }
        if name != dockerName { renamed.append("Docker's \(kind) '\(dockerName)' is '\(name)' here.") }
        return name
    }

    /// The name a container was given.
    func policyName(of dockerName: String) -> String? { byDockerName[dockerName] }
}
