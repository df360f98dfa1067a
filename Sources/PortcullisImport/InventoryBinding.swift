import PortcullisDocker
import PortcullisNet
import PortcullisSyntax

/// Binds a policy to what a Docker host runs: the stage between the syntax tree and the
/// checker when a command is given `--inventory`. The host's networks and running containers
/// are Docker's (the tree `import --from docker` would write for the inventory); the policy
/// names them, pins what it wants to pin, and adds what Docker cannot say (flows, egress,
/// allow-lists on publishes, groups by Compose service or label). Pinned values must agree with
/// the inventory. What the policy names but the host does not run is left out with a warning,
/// as Docker writes nothing for a stopped container. docs/language.md, "Policies bound to an
/// inventory", is the prose form.
public struct InventoryBinding {
    let inventory: Inventory
    /// Where the inventory was read, for messages: `the Docker daemon at unix:///…`.
    let origin: String
    var diagnostics: [Diagnostic] = []

    /// The inventory's networks and containers by policy name, with their imported declarations.
    private var networks: [String: (read: Inventory.Network, declared: ImportedHost.Network)] = [:]
    private var containers: [String: (read: Inventory.Container, declared: ImportedHost.Container)] = [:]
    /// Policy network names by Docker network name.
    private var networkNames: [String: String] = [:]
    /// Names the policy uses that the host does not run: rules naming them are left out.
    private var absent: Set<String> = []

    /// The policy's statements bound to `inventory`, or the errors that stop it; warnings either way.
    public static func bind(_ loaded: LoadedPolicy, to inventory: Inventory, origin: String) -> (
        LoadedPolicy?, [Diagnostic]
    ) {
        var binding = InventoryBinding(inventory: inventory, origin: origin)
        let statements = binding.bind(loaded.statements)
        let failed = binding.diagnostics.contains { $0.severity == .error }
        return (failed ? nil : loaded.replacingStatements(statements), binding.diagnostics)
    }

    private mutating func bind(_ statements: [Statement]) -> [Statement] {
        let layout = inventory.daemon.flatMap(InventoryImport.layout(for:))
        var imported = InventoryImport.importHost(
            inventory, layout: layout?.layout ?? "", backend: layout?.backend, daemonFlags: [], origin: origin)
        if layout == nil { imported.settings.removeAll { if case .layout = $0 { true } else { false } } }
        index(imported)
        let tree = imported.syntax(path: "").statements

        var userHost: Block?
        var userNetworks: [String: Block] = [:]
        var userContainers: [String: Block] = [:]
        var rest: [Statement] = []
        for statement in statements {
            switch statement {
            case .block(let block) where block.kind == .host: userHost = block
            case .block(let block) where block.kind == .network: userNetworks[block.name?.value ?? ""] = block
            case .block(let block) where block.kind == .container: userContainers[block.name?.value ?? ""] = block
            default: rest.append(statement)
            }
        }
        checkNamespace(statements)
        for (name, block) in userNetworks.sorted(by: { $0.key < $1.key }) where networks[name] == nil {
            absent.insert(name)
            warning(
                "network '\(name)' is not on the host (\(origin)): rules naming it are left out", at: block.name,
                hint: "Docker has no rules for a network that does not exist; create it, or remove it from the policy")
        }
        for (name, block) in userContainers.sorted(by: { $0.key < $1.key }) where containers[name] == nil {
            absent.insert(name)
            warning(
                "container '\(name)' is not running on the host (\(origin)): its rules are left out", at: block.name,
                hint: "Docker writes nothing for a stopped container; its rules come back when it runs")
        }

        var bound: [Statement] = []
        for statement in tree {
            guard case .block(let block) = statement, let name = block.name?.value else {
                if case .block(let host) = statement, host.kind == .host {
                    bound.append(.block(merge(host: userHost, imported: host)))
                }
                continue
            }
            switch block.kind {
            case .network: bound.append(.block(bind(network: name, userNetworks[name], imported: block)))
            case .container: bound.append(.block(bind(container: name, userContainers[name], imported: block)))
            case .host: break
            }
        }
        bound += resolve(rest)
        return bound
    }

    /// Indexes the imported declarations by policy name, next to what the inventory read.
    private mutating func index(_ imported: ImportedHost) {
        for network in imported.networks {
            guard let read = inventory.networks.first(where: { $0.bridge == network.bridge }) else { continue }
            networks[network.name] = (read, network)
            networkNames[read.name] = network.name
        }
        // An imported container is the running container holding its first address.
        var byAddress: [String: Inventory.Container] = [:]
        for container in inventory.containers {
            for endpoint in container.endpoints {
                if let ipv4 = endpoint.ipv4 { byAddress[ipv4.address.description] = container }
            }
        }
        for container in imported.containers {
            guard let address = container.attachments.first?.address, let read = byAddress[address] else { continue }
            containers[container.name] = (read, container)
        }
    }

    /// A name the policy declares as one kind must not be the host's name for another.
    private mutating func checkNamespace(_ statements: [Statement]) {
        for statement in statements {
            let declared: (kind: String, name: Located<String>)
            switch statement {
            case .block(let block) where block.kind != .host:
                guard let name = block.name else { continue }
                declared = (block.kind.rawValue, name)
            case .list(let list) where list.kind == .group: declared = ("group", list.name)
            default: continue
            }
            let onHost =
                networks[declared.name.value] != nil
                ? "network" : containers[declared.name.value] != nil ? "container" : nil
            if let onHost, onHost != declared.kind {
                error(
                    "'\(declared.name.value)' is a \(onHost) on the host (\(origin)) but a \(declared.kind) here",
                    at: declared.name,
                    hint:
                        "containers, groups and networks share one namespace, the host's included; rename the \(declared.kind)"
                )
            }
        }
    }

    // MARK: - Host, networks, containers

    /// The policy's host block, with the layout and backend the daemon calls for unless it names
    /// its own; the daemon's `--icc` and `--ip-masq` must agree with the default network's options.
    private mutating func merge(host user: Block?, imported: Block) -> Block {
        guard let user else { return imported }
        let written = Set(user.settings.map(\.keyword.value))
        if let defaultNetwork = inventory.networks.first(where: \.isDefault) {
            for setting in user.settings {
                guard let value = setting.values.first else { continue }
                switch setting.keyword.value {
                case "icc":
                    agree(
                        value, (value.value == "deny") == !defaultNetwork.icc, says: "icc \(value.value)",
                        host: "\(defaultNetwork.icc ? "allows" : "denies") ICC on the default network")
                case "ip-masquerade":
                    agree(
                        value, (value.value == "off") == !defaultNetwork.masquerade,
                        says: "ip-masquerade \(value.value)",
                        host: "masquerades the default network \(defaultNetwork.masquerade ? "on" : "off")")
                default: break
                }
            }
        }
        return Block(
            kind: .host, keyword: user.keyword, name: nil,
            settings: user.settings + imported.settings.filter { !written.contains($0.keyword.value) },
            leadingTrivia: user.leadingTrivia)
    }

    /// A network is the host's; what the policy pins must agree.
    private mutating func bind(network name: String, _ user: Block?, imported: Block) -> Block {
        guard let user, let (read, _) = networks[name] else { return imported }
        for setting in user.settings {
            let value = setting.values.first
            switch (setting.keyword.value, value) {
            case ("bridge", let value?):
                agree(
                    value, value.value == read.bridge, says: "bridge \(value.value)", host: "has bridge \(read.bridge)")
            case ("subnet", let value?):
                let prefix = try? IPPrefix.parse(Substring(value.value)).get()
                let subnet = prefix.flatMap { read.subnet($0.address.family) }
                agree(
                    value, prefix.map(\.network) == subnet?.prefix, says: "subnet \(value.value)",
                    host: "has subnet \(read.subnets.map { "\($0.prefix)" }.joined(separator: " and "))")
            case ("gateway", let value?):
                let address = IPAddress(value.value)
                let subnet = address.flatMap { read.subnet($0.family) }
                let gateway = subnet.map { $0.gateway ?? $0.prefix.address.adding(1) }
                agree(
                    value, address != nil && address == gateway, says: "gateway \(value.value)",
                    host: "has gateway \(gateway.map { "\($0)" } ?? "none in that family")")
            case ("internal", _):
                agree(setting.keyword, read.internal, says: "internal", host: "is not internal")
            case ("icc", let value?):
                agree(
                    value, (value.value == "deny") == !read.icc, says: "icc \(value.value)",
                    host: read.icc ? "allows ICC" : "denies ICC")
            case ("masquerade", let value?):
                agree(
                    value, (value.value == "off") == !read.masquerade, says: "masquerade \(value.value)",
                    host: "has masquerading \(read.masquerade ? "on" : "off")")
            case ("host-binding", let value?):
                let address = IPAddress(value.value)
                agree(
                    value, address == (read.hostBinding ?? IPAddress("0.0.0.0")), says: "host-binding \(value.value)",
                    host: "binds publishes to \(read.hostBinding.map { "\($0)" } ?? "0.0.0.0")")
            case ("gateway-mode", let value?):
                let mode = read.gatewayMode.flatMap { $0.isEmpty ? nil : $0 } ?? "nat"
                agree(value, value.value == mode, says: "gateway-mode \(value.value)", host: "has gateway mode \(mode)")
            default: break
            }
        }
        return Block(
            kind: .network, keyword: user.keyword, name: user.name, settings: imported.settings,
            leadingTrivia: user.leadingTrivia)
    }

    /// A running container is the host's: its attachments, exposed ports and publishes are
    /// Docker's. The policy's `attach` lines must name its networks (and its addresses, if they
    /// give them); its `publish` lines must name Docker's bindings, and their `from` allow-lists
    /// are kept.
    private mutating func bind(container name: String, _ user: Block?, imported: Block) -> Block {
        guard let user, let (read, declared) = containers[name] else { return imported }
        var settings = imported.settings
        var matched: Set<Int> = []
        let internalOnly = declared.publishes.isEmpty && !(read.portBindings.isEmpty && !read.publishAll)
        for setting in user.settings {
            switch setting.keyword.value {
            case "attach": checkAttach(setting, of: read, name: name)
            case "expose":
                for value in setting.values where !read.exposed.map(\.description).contains(Self.spec(value.value)) {
                    error(
                        "container '\(name)' does not expose \(value.value) on the host (\(origin)); it exposes \(Self.listed(read.exposed.map(\.description)))",
                        at: value, hint: "exposed ports are the image's; remove the line or make it agree")
                }
            case "publish-all":
                guard read.publishAll else {
                    error(
                        "container '\(name)' was not started with -P on the host (\(origin))", at: setting.keyword,
                        hint: "remove 'publish-all', or restart the container with -P")
                    continue
                }
                if let at = settings.firstIndex(where: { $0.keyword.value == "publish-all" }) { settings[at] = setting }
            case "publish":
                // Docker maps nothing for a container on internal networks only: the policy's
                // line stands, and the checker warns that it has no effect.
                if internalOnly {
                    settings.append(setting)
                    continue
                }
                guard let wanted = PublishForm(setting) else { continue }
                let candidates = settings.indices.filter { at in
                    !matched.contains(at) && settings[at].keyword.value == "publish"
                        && PublishForm(settings[at]).map { wanted.matches($0, boundPorts: read.ports) } == true
                }
                guard let at = candidates.first else {
                    let published = settings.filter { $0.keyword.value == "publish" }.compactMap(PublishForm.init)
                    error(
                        "container '\(name)' has no publish \(wanted) on the host (\(origin)); it publishes \(Self.listed(published.map(\.description)))",
                        at: setting.keyword,
                        hint:
                            "ports are Docker's (recreate the container to change them); a publish line only adds its 'from' allow-list"
                    )
                    continue
                }
                matched.insert(at)
                let target = settings[at].clauses.filter { $0.keyword.value == "->" }
                settings[at] = Setting(
                    keyword: setting.keyword, values: settings[at].values,
                    clauses: target + setting.clauses.filter { $0.keyword.value == "from" })
            default: break
            }
        }
        return Block(
            kind: .container, keyword: user.keyword, name: user.name, settings: settings,
            leadingTrivia: user.leadingTrivia)
    }

    private mutating func checkAttach(_ setting: Setting, of read: Inventory.Container, name: String) {
        guard let network = setting.values.first else { return }
        let onNetworks = read.endpoints.compactMap { networkNames[$0.network] }
        guard let endpoint = read.endpoints.first(where: { networkNames[$0.network] == network.value }) else {
            error(
                "container '\(name)' is not on network '\(network.value)' on the host (\(origin)); it is on \(Self.listed(onNetworks))",
                at: network, hint: "connect it (docker network connect), or attach it where it is")
            return
        }
        if setting.values.count > 1 {
            let value = setting.values[1]
            let address = IPAddress(value.value)
            let held = [endpoint.ipv4, endpoint.ipv6].compactMap { $0?.address }
            agree(
                value, address.map(held.contains) == true, says: "\(name) has \(value.value) on \(network.value)",
                host: "gives it \(Self.listed(held.map(\.description)))")
        }
        if let mac = setting.clause("mac")?.values.first {
            agree(
                mac, mac.value.lowercased() == endpoint.mac, says: "mac \(mac.value)",
                host: "gives it \(endpoint.mac ?? "no MAC address")")
        }
    }

    // MARK: - Groups and rules

    /// Group selectors become the running containers they select, in start order; names the
    /// host does not run leave the groups and rules that use them.
    private mutating func resolve(_ statements: [Statement]) -> [Statement] {
        var lists: [Int: ListBlock] = [:]
        // Positions in the inventory (start order), found once: a host has thousands.
        let started = Dictionary(
            inventory.containers.enumerated().map { ($0.element.id, $0.offset) },
            uniquingKeysWith: { first, _ in first })
        func start(_ container: Inventory.Container) -> Int { started[container.id] ?? Int.max }
        for (at, statement) in statements.enumerated() {
            guard case .list(let list) = statement, list.kind == .group else { continue }
            var entries: [ListEntry] = []
            var named: Set<String> = []
            for entry in list.entries {
                guard let selector = entry.selector else {
                    entries.append(entry)
                    named.insert(entry.value.value)
                    continue
                }
                let selected = containers.filter { Self.selects(selector.value, entry.value.value, $0.value.read) }
                    .sorted { start($0.value.read) < start($1.value.read) }.map(\.key)
                if selected.isEmpty {
                    warning(
                        "\(selector.value) \(entry.value.value) selects no running container on the host (\(origin))",
                        at: entry.value,
                        hint: selector.value == "compose"
                            ? "compose selects PROJECT or PROJECT/SERVICE (the com.docker.compose.* labels)" : nil)
                }
                for name in selected where named.insert(name).inserted {
                    entries.append(ListEntry(Located(name, at: entry.value.range)))
                }
            }
            lists[at] = ListBlock(
                kind: .group, keyword: list.keyword, name: list.name, entries: entries,
                leadingTrivia: list.leadingTrivia)
        }
        // A group left with no running member is absent too, and so on for groups of groups.
        var changed = true
        while changed {
            changed = false
            for (at, list) in lists where !absent.contains(list.name.value) {
                let members = list.entries.filter { !absent.contains($0.value.value) }
                lists[at] = ListBlock(
                    kind: .group, keyword: list.keyword, name: list.name, entries: members,
                    leadingTrivia: list.leadingTrivia)
                if members.isEmpty {
                    absent.insert(list.name.value)
                    changed = true
                }
            }
        }
        return statements.enumerated().compactMap { at, statement in
            if let list = lists[at] { return absent.contains(list.name.value) ? nil : .list(list) }
            if case .rule(let rule) = statement {
                let ends = [rule.values.first, rule.clause("->")?.values.first].compactMap { $0?.value }
                return ends.contains(where: absent.contains) ? nil : statement
            }
            return statement
        }
    }

    /// `compose PROJECT[/SERVICE]` or `label KEY[=VALUE]`.
    static func selects(_ selector: String, _ value: String, _ container: Inventory.Container) -> Bool {
        switch selector {
        case "compose":
            guard let (project, service) = container.composeService else { return false }
            let parts = value.split(separator: "/", maxSplits: 1).map(String.init)
            return parts.first == project && (parts.count == 1 || parts[1] == service)
        default:
            let parts = value.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard let label = container.labels[parts[0]] else { return false }
            return parts.count == 1 || parts[1] == label
        }
    }

    // MARK: - Diagnostics

    /// An error unless `agrees`: the policy says one thing, the host another.
    private mutating func agree(_ at: Located<String>, _ agrees: Bool, says: String, host: String) {
        guard !agrees else { return }
        error(
            "the policy says \(says), but the host (\(origin)) \(host)", at: at,
            hint: "values the policy leaves out come from the inventory; remove the value or make it agree")
    }

    private mutating func error(_ message: String, at: Located<String>, hint: String? = nil) {
        diagnostics.append(Diagnostic(message, at: at.range, hint: hint))
    }

    private mutating func warning(_ message: String, at: Located<String>?, hint: String? = nil) {
        guard let at else { return }
        diagnostics.append(Diagnostic(message, at: at.range, hint: hint, severity: .warning))
    }

    static func listed(_ items: [String]) -> String { items.isEmpty ? "none" : items.joined(separator: ", ") }

    /// `80` is `80/tcp`, as the language reads a port without a protocol.
    static func spec(_ text: String) -> String { text.contains("/") ? text : text + "/tcp" }
}

/// A `publish` line reduced to what it says about Docker's binding: host address, host ports
/// (nil: the daemon's choice, unless `chosen` says it), container ports and protocol.
struct PublishForm: CustomStringConvertible {
    var hostAddress: IPAddress?
    var hostPorts: PortRange?
    var containerPorts: PortRange
    var transport: TransportProtocol
    /// The host port is the daemon's, written `chosen PORT`.
    var chosen = false

    init?(_ setting: Setting) {
        guard let left = setting.values.first?.value else { return nil }
        let chosenPort = setting.clause("chosen")?.values.first.flatMap { Self.ports(Substring($0.value)) }
        (hostPorts, chosen) = (chosenPort, chosenPort != nil)
        guard let target = setting.clause("->")?.values.first?.value else {
            guard let (ports, transport) = Self.containerSide(left) else { return nil }
            (containerPorts, self.transport) = (ports, transport)
            return
        }
        guard let (ports, transport) = Self.containerSide(target) else { return nil }
        (containerPorts, self.transport) = (ports, transport)
        if let address = Self.address(left) {
            hostAddress = address
            return
        }
        var portsText = Substring(left)
        if let colon = left.lastIndex(of: ":") {
            guard let address = Self.address(String(left[..<colon])) else { return nil }
            hostAddress = address
            portsText = left[left.index(after: colon)...]
        }
        guard let hostPorts = Self.ports(portsText) else { return nil }
        self.hostPorts = hostPorts
    }

    /// Whether Docker's binding `bound` is this one: the same container ports, protocol and host
    /// address, and the same host ports unless this leaves them to the daemon.
    func matches(_ bound: PublishForm, boundPorts: [Inventory.BoundPort]) -> Bool {
        guard containerPorts == bound.containerPorts, transport == bound.transport, hostAddress == bound.hostAddress
        else { return false }
        guard let hostPorts else { return true }
        if let boundHost = bound.hostPorts { return boundHost == hostPorts }
        // Docker chose the port: what it bound is in the inventory.
        return hostPorts.isSingle
            && boundPorts.contains {
                $0.container.port == containerPorts.first && $0.container.transport == transport
                    && $0.hostPort == hostPorts.first
            }
    }

    var description: String {
        let side = "\(containerPorts)/\(transport.rawValue)"
        let address = hostAddress.map { $0.family == .ipv6 ? "[\($0)]" : "\($0)" }
        if chosen, let hostPorts { return "\(address.map { $0 + " -> " } ?? "")\(side) chosen \(hostPorts)" }
        switch (address, hostPorts) {
        case (nil, nil): return side
        case (let address?, nil): return "\(address) -> \(side)"
        case (let address, let ports?): return "\(address.map { $0 + ":" } ?? "")\(ports) -> \(side)"
        }
    }

    static func address(_ text: String) -> IPAddress? {
        if text.hasPrefix("[") && text.hasSuffix("]") { return IPAddress(String(text.dropFirst().dropLast())) }
        return text.contains(":") ? nil : IPAddress(text)
    }

    static func containerSide(_ text: String) -> (PortRange, TransportProtocol)? {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first, let ports = ports(first) else { return nil }
        guard parts.count == 2 else { return (ports, .tcp) }
        return TransportProtocol(rawValue: String(parts[1])).map { (ports, $0) }
    }

    static func ports(_ text: Substring) -> PortRange? {
        let bounds = text.split(separator: "-", maxSplits: 1).map { UInt16($0) }
        guard let first = bounds.first ?? nil else { return nil }
        guard bounds.count == 2 else { return PortRange(first) }
        guard let last = bounds[1], last >= first else { return nil }
        return PortRange(first, last)
    }
}
