import PortcullisNet
import PortcullisSyntax

/// Turns a loaded syntax tree into a checked `Policy`, or reports every problem it finds.
///
/// Names are global (a flow may name a container declared further down), but creation order
/// is file order: a container can only attach to a network declared above it, as Docker can
/// only start a container on a network that already exists.
public struct Checker {
    public static func check(_ loaded: LoadedPolicy) -> Result<Policy, DiagnosticError> {
        var checker = Checker()
        let policy = checker.run(loaded.statements)
        if checker.diagnostics.contains(where: { $0.severity == .error }) {
            return .failure(DiagnosticError(checker.diagnostics))
        }
        return .success(policy)
    }

    var diagnostics: [Diagnostic] = []

    mutating func error(_ message: String, at range: SourceRange, hint: String? = nil) {
        diagnostics.append(Diagnostic(message, at: range, hint: hint))
    }

    mutating func warning(_ message: String, at range: SourceRange, hint: String? = nil) {
        diagnostics.append(Diagnostic(message, at: range, hint: hint, severity: .warning))
    }

    // MARK: - Declarations

    private var host = HostSettings()
    private var networks: [Network] = []
    private var containers: [Container] = []
    /// Positions in `containers` by name: rules look containers up by the thousand.
    private var containerPositions: [String: Int] = [:]
    private var groups: [String: [String]] = [:]
    private var addressSets: [String: [IPPrefix]] = [:]
    private var services: [String: [PortSpec]] = [:]
    /// Declared endpoint names (containers, groups, networks share one namespace).
    private var endpointKinds: [String: (kind: String, at: SourceRange)] = [:]
    private var listNames: [String: SourceRange] = [:]

    private mutating func run(_ statements: [Statement]) -> Policy {
        declareNames(statements)
        var hostSeen: SourceRange?
        var deferredRules: [Setting] = []
        var deferredContainers: [(Block, Int)] = []
        var deferredLists: [ListBlock] = []
        // The host block first: the default network's settings depend on it wherever it stands.
        for case .block(let block) in statements where block.kind == .host {
            if let first = hostSeen {
                error(
                    "second host block", at: block.keyword.range,
                    hint: "merge it with the host block at line \(first.start.line)")
            }
            hostSeen = block.keyword.range
            checkHost(block)
        }
        for statement in statements {
            switch statement {
            case .include:
                break  // expanded by the loader
            case .block(let block):
                switch block.kind {
                case .host:
                    break  // checked above
                case .network:
                    checkNetwork(block)
                case .container:
                    // Checked once every network is known (for "declared later" hints), in order.
                    deferredContainers.append((block, networks.count))
                }
            case .list(let list):
                deferredLists.append(list)
            case .rule(let rule):
                deferredRules.append(rule)
            }
        }
        for list in deferredLists where list.kind != .group { checkList(list) }
        for list in deferredLists where list.kind == .group { checkList(list) }
        for (block, networksDeclaredBefore) in deferredContainers {
            checkContainer(block, networksDeclaredBefore: networksDeclaredBefore)
        }
        warnAboutDaemonFlagsWithoutDefaultNetwork()
        allocateEphemeralPorts()
        checkPublishConflicts()
        let rules = deferredRules.compactMap { checkRule($0) }
        // Docker creates its default bridge when the daemon starts, before anything else.
        let defaultBridges = networks.filter(\.isDefaultBridge)
        let events =
            defaultBridges.map { CreationEvent.createNetwork($0.name) }
            + declarationOrder.filter {
                if case .createNetwork(let name) = $0 { return !defaultBridges.contains { $0.name == name } }
                return true
            }
        return Policy(
            host: host, networks: defaultBridges + networks.filter { !$0.isDefaultBridge }, containers: containers,
            groups: groups, addressSets: addressSets, services: services, rules: rules, events: events,
            warnings: diagnostics.filter { $0.severity == .warning })
    }

    /// Networks and containers in the order the files declare them.
    private var declarationOrder: [CreationEvent] = []

    private mutating func declareNames(_ statements: [Statement]) {
        func declare(_ name: Located<String>, kind: String) {
            if let problem = Checker.nameProblem(name.value) {
                error("invalid \(kind) name '\(name.value)': \(problem)", at: name.range, hint: Checker.nameHint)
            }
            if let existing = endpointKinds[name.value] {
                error(
                    "duplicate name '\(name.value)': already declared as a \(existing.kind) at line \(existing.at.start.line)",
                    at: name.range, hint: "containers, groups and networks share one namespace; rename one")
                return
            }
            endpointKinds[name.value] = (kind, name.range)
        }
        for statement in statements {
            switch statement {
            case .block(let block) where block.kind != .host:
                declare(block.name!, kind: block.kind.rawValue)
                declarationOrder.append(
                    block.kind == .network ? .createNetwork(block.name!.value) : .startContainer(block.name!.value))
            case .list(let list) where list.kind == .group:
                declare(list.name, kind: "group")
            case .list(let list):
                let key = "\(list.kind.rawValue) \(list.name.value)"
                if let problem = Checker.nameProblem(list.name.value) {
                    error(
                        "invalid \(list.kind.rawValue) name '\(list.name.value)': \(problem)", at: list.name.range,
                        hint: Checker.nameHint)
                }
                if let existing = listNames[key] {
                    error(
                        "duplicate \(list.kind.rawValue) '\(list.name.value)': already declared at line \(existing.start.line)",
                        at: list.name.range)
                } else {
                    listNames[key] = list.name.range
                }
            default:
                break
            }
        }
    }

    static let nameHint = "names start with a letter and use letters, digits, '-', '_' and '.' (at most 64)"

    /// Names reach ruleset comments, so they are kept to a conservative alphabet.
    static func nameProblem(_ name: String) -> String? {
        guard let first = name.first, first.isASCII, first.isLetter else { return "must start with a letter" }
        if name.count > 64 { return "longer than 64 characters" }
        if let bad = name.first(where: { !($0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0))) }) {
            return "contains '\(bad)'"
        }
        if ["any", "outside", "host"].contains(name) { return "'\(name)' is a reserved word" }
        return nil
    }

    // MARK: - Values

    mutating func onOff(_ value: Located<String>, _ on: String = "on", _ off: String = "off") -> Bool? {
        switch value.value {
        case on: return true
        case off: return false
        default:
            error("expected '\(on)' or '\(off)', found '\(value.value)'", at: value.range)
            return nil
        }
    }

    mutating func address(_ value: Located<String>, what: String) -> IPAddress? {
        guard let address = IPAddress(value.value) else {
            error(
                "invalid \(what) '\(value.value)'", at: value.range,
                hint: "write an IPv4 address like 198.18.0.10 or an IPv6 address like fd00::10")
            return nil
        }
        return address
    }

    mutating func prefix(_ value: Located<String>, what: String) -> IPPrefix? {
        switch IPPrefix.parse(Substring(value.value)) {
        case .success(let prefix): return prefix
        case .failure(.badAddress):
            error(
                "invalid \(what) '\(value.value)'", at: value.range,
                hint: "write a CIDR prefix like 198.18.0.0/24 or fd00::/64")
        case .failure(.badLength(let max)):
            error("invalid prefix length in '\(value.value)'", at: value.range, hint: "the length must be 0 to \(max)")
        }
        return nil
    }

    mutating func portRange(_ text: Substring, at range: SourceRange) -> PortRange? {
        switch PortRange.parse(text) {
        case .success(let ports): return ports
        case .failure(.notANumber):
            error("invalid port '\(text)'", at: range, hint: "write a port like 80 or a range like 8000-8010")
        case .failure(.outOfRange):
            error("port out of range in '\(text)'", at: range, hint: "ports are 1 to 65535")
        case .failure(.reversed):
            error("port range '\(text)' ends before it starts", at: range, hint: "write the lower port first")
        }
        return nil
    }

    /// `PORTS[/PROTO]`; the protocol defaults to tcp, as in Docker.
    mutating func portSpec(_ value: Located<String>, requireProtocol: Bool = false) -> PortSpec? {
        let parts = value.value.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        var transport = TransportProtocol.tcp
        if parts.count == 2 {
            guard let t = TransportProtocol(rawValue: String(parts[1])) else {
                let column = value.range.start.column + parts[0].count + 1
                error(
                    "unknown protocol '\(parts[1])'",
                    at: SourceRange(
                        start: SourceLocation(
                            file: value.range.start.file, line: value.range.start.line, column: column),
                        length: parts[1].count),
                    hint: "protocols are tcp, udp and sctp")
                return nil
            }
            transport = t
        } else if requireProtocol {
            error("missing protocol in '\(value.value)'", at: value.range, hint: "write e.g. \(value.value)/tcp")
            return nil
        }
        guard let ports = portRange(parts[0], at: value.range) else { return nil }
        return PortSpec(ports, transport)
    }

    // MARK: - host

    private mutating func checkHost(_ block: Block) {
        var seen: [String: SourceRange] = [:]
        for setting in block.settings {
            let key = setting.keyword.value
            if let first = seen[key] {
                error("'\(key)' set twice", at: setting.keyword.range, hint: "first set at line \(first.start.line)")
                continue
            }
            seen[key] = setting.keyword.range
            host.locations[key] = setting.keyword.range.start
            let value = setting.values.first
            switch key {
            case "layout": host.layout = value!.value
            case "backend": host.backend = value!.value
            case "userland-proxy": host.userlandProxy = onOff(value!) ?? true
            case "icc": host.icc = onOff(value!, "allow", "deny") ?? true
            case "ip-masquerade": host.ipMasquerade = onOff(value!) ?? true
            case "forward-policy": host.forwardPolicyDrop = onOff(value!, "drop", "accept")
            case "count-drops": host.countDrops = onOff(value!) ?? false
            case "ip6tables": host.ip6tables = onOff(value!) ?? false
            case "external":
                for name in setting.values {
                    if checkInterfaceName(name) { host.externalInterfaces.append(name.value) }
                }
            case "ephemeral-ports":
                if let range = portRange(Substring(value!.value), at: value!.range) {
                    if range.count < 2 {
                        error("the ephemeral port range needs at least two ports", at: value!.range)
                    } else {
                        host.ephemeralPorts = range
                    }
                }
            case "log-drops":
                host.logDrops = checkLogDrops(setting)
            default:
                break  // the parser only lets known settings through
            }
        }
    }

    private mutating func checkLogDrops(_ setting: Setting) -> LogSettings? {
        var settings = LogSettings(rateCount: 10, rateUnit: .minute, prefix: "portcullis-drop: ")
        if let rate = setting.clause("rate")?.values.first {
            let parts = rate.value.split(separator: "/", maxSplits: 1)
            guard parts.count == 2, let count = Int(parts[0]), count > 0, count <= 10_000,
                let unit = LogSettings.Unit(rawValue: String(parts[1]))
            else {
                error(
                    "invalid rate '\(rate.value)'", at: rate.range,
                    hint: "write COUNT/UNIT with a unit of second, minute, hour or day, e.g. 10/minute")
                return nil
            }
            settings.rateCount = count
            settings.rateUnit = unit
        }
        if let prefix = setting.clause("prefix")?.values.first {
            if let problem = RulesetText.problem(in: prefix.value) {
                error("log prefix \(problem)", at: prefix.range, hint: "use printable ASCII without quotes")
                return nil
            }
            if prefix.value.contains("$") {
                error(
                    "log prefix contains '$'", at: prefix.range,
                    hint: "nft reads '$' in a log prefix as the start of a variable, and has no way to escape it")
                return nil
            }
            if prefix.value.utf8.count > 29 {
                error(
                    "log prefix is longer than 29 bytes", at: prefix.range,
                    hint: "the kernel truncates log prefixes at 29 bytes")
                return nil
            }
            settings.prefix = prefix.value
        }
        return settings
    }

    @discardableResult
    mutating func checkInterfaceName(_ name: Located<String>) -> Bool {
        switch InterfaceName.validate(name.value) {
        case nil: return checkNftInterfaceName(name)
        case .empty?: error("empty interface name", at: name.range)
        case .tooLong(let bytes)?:
            error(
                "interface name '\(name.value)' is \(bytes) bytes long", at: name.range,
                hint: "Linux interface names are at most \(InterfaceName.maximumLength) bytes")
        case .forbiddenCharacter(let c)?:
            error(
                "interface name '\(name.value)' contains '\(c)'", at: name.range,
                hint: "use letters, digits, '-', '_', '.' and '@'; no '/', whitespace or wildcards")
        case .reserved?:
            error("'\(name.value)' cannot be an interface name", at: name.range)
        }
        return false
    }

    /// What nft cannot take as an interface name although Linux can: libnftables JSON has no
    /// quoting, so a leading `@` reads as a set reference and these words as protocol constants
    /// (nftables' `json_parse_immediate`).
    private mutating func checkNftInterfaceName(_ name: Located<String>) -> Bool {
        if name.value.hasPrefix("@") {
            error(
                "interface name '\(name.value)' starts with '@'", at: name.range,
                hint: "nft reads a leading '@' as a set reference; rename the interface")
            return false
        }
        if Checker.nftJSONConstants.contains(name.value) {
            error(
                "interface name '\(name.value)' is an nft protocol name", at: name.range,
                hint:
                    "nft JSON rulesets read '\(name.value)' as the protocol, not as an interface; rename the interface")
            return false
        }
        return true
    }

    private static let nftJSONConstants: Set<String> = [
        "tcp", "udp", "udplite", "esp", "ah", "icmp", "icmpv6", "comp", "dccp", "sctp", "redirect",
    ]

    // MARK: - network

    /// Positions in `networks` by name (the first of a duplicated name).
    private var networkPositions: [String: Int] = [:]
    /// The network that took each bridge first.
    private var bridgeOwners: [String: String] = [:]
    /// The subnets declared so far, per family, for overlap checks that stay linear.
    private var subnetOverlaps: [IPFamily: SubnetOverlaps] = [:]

    private mutating func checkNetwork(_ block: Block) {
        let name = block.name!
        var bridge: String?
        var subnets: [IPFamily: (IPPrefix, SourceRange)] = [:]
        var gateways: [IPFamily: (IPAddress, Located<String>)] = [:]
        var icc: Bool?
        var isInternal = false
        var masquerade: Bool?
        var hostBinding: IPAddress?
        var gatewayMode: GatewayMode?
        var seen: [String: SourceRange] = [:]
        for setting in block.settings {
            let key = setting.keyword.value
            let repeatable = key == "subnet" || key == "gateway"
            if !repeatable, let first = seen[key] {
                error("'\(key)' set twice", at: setting.keyword.range, hint: "first set at line \(first.start.line)")
                continue
            }
            seen[key] = setting.keyword.range
            let value = setting.values.first
            switch key {
            case "bridge":
                if checkInterfaceName(value!) { bridge = value!.value }
            case "subnet":
                guard let p = prefix(value!, what: "subnet") else { continue }
                if subnets[p.family] != nil {
                    error(
                        "second \(p.family == .ipv4 ? "IPv4" : "IPv6") subnet", at: value!.range,
                        hint: "a network has at most one IPv4 and one IPv6 subnet")
                    continue
                }
                if p.hasHostBits {
                    error(
                        "subnet '\(value!.value)' has host bits set", at: value!.range,
                        hint: "did you mean \(p.network)? Set the bridge address with 'gateway'")
                }
                if p.family == .ipv4 && p.length > 30 {
                    error("subnet '\(value!.value)' is too small for a gateway and a container", at: value!.range)
                }
                subnets[p.family] = (p.network, value!.range)
            case "gateway":
                guard let a = address(value!, what: "gateway") else { continue }
                if gateways[a.family] != nil {
                    error("second \(a.family == .ipv4 ? "IPv4" : "IPv6") gateway", at: value!.range)
                    continue
                }
                gateways[a.family] = (a, value!)
            case "icc": icc = onOff(value!, "allow", "deny")
            case "internal": isInternal = true
            case "masquerade": masquerade = onOff(value!)
            case "host-binding": hostBinding = address(value!, what: "host binding address")
            case "gateway-mode":
                gatewayMode = GatewayMode(rawValue: value!.value)
                if gatewayMode == nil {
                    error(
                        "expected 'nat', 'routed' or 'nat-unprotected', found '\(value!.value)'", at: value!.range,
                        hint:
                            "gateway-mode is Docker's com.docker.network.bridge.gateway_mode_ipv4; nat is the default"
                    )
                }
            default: break
            }
        }
        guard let bridge else {
            if seen["bridge"] == nil {
                error(
                    "network '\(name.value)' has no bridge", at: name.range,
                    hint: "add a line such as 'bridge br-\(name.value.prefix(12))'")
            }
            return
        }
        guard let subnet4 = subnets[.ipv4] else {
            if seen["subnet"] != nil && subnets.isEmpty { return }  // the subnet line has its own error
            error(
                "network '\(name.value)' has no IPv4 subnet", at: name.range,
                hint:
                    "add a line such as 'subnet 198.18.1.0/24'; IPv6-only networks are not supported by Docker's bridge driver"
            )
            return
        }
        var gateway: [IPFamily: IPAddress] = [:]
        for (family, (address, written)) in gateways {
            guard let (subnet, _) = subnets[family] else {
                error(
                    "gateway '\(written.value)' is \(family == .ipv4 ? "IPv4" : "IPv6") but the network has no \(family == .ipv4 ? "IPv4" : "IPv6") subnet",
                    at: written.range)
                continue
            }
            if !subnet.contains(address) {
                error("gateway \(address) is outside the subnet \(subnet)", at: written.range)
            } else if address == subnet.first || (family == .ipv4 && address == subnet.last) {
                error(
                    "gateway \(address) is the \(address == subnet.first ? "network" : "broadcast") address of \(subnet)",
                    at: written.range)
            }
            gateway[family] = address
        }
        if let duplicate = bridgeOwners[bridge] {
            error(
                "bridge '\(bridge)' is already used by network '\(duplicate)'",
                at: block.settings.first { $0.keyword.value == "bridge" }!.values[0].range,
                hint: "each network needs its own bridge")
        } else {
            bridgeOwners[bridge] = name.value
        }
        for family in [IPFamily.ipv4, .ipv6] {
            guard let (subnet, range) = subnets[family] else { continue }
            let found = subnetOverlaps[family, default: SubnetOverlaps()].add(subnet, position: networks.count)
            guard found.count > 0 else { continue }
            var items = found.first.map { position in
                let other = networks[position]
                return "\((family == .ipv4 ? other.subnet4 : other.subnet6)!) of network '\(other.name)'"
            }
            let more = found.count - items.count
            if more > 0 { items.append("\(more) more network\(more == 1 ? "" : "s")") }
            let list = items.count == 1 ? items[0] : items.dropLast().joined(separator: ", ") + " and " + items.last!
            error("subnet \(subnet) overlaps \(list)", at: range, hint: "bridges need disjoint subnets")
        }
        if let hostBinding, hostBinding.family != .ipv4 {
            error(
                "host-binding must be an IPv4 address",
                at: block.settings.first { $0.keyword.value == "host-binding" }!.values[0].range)
        }
        if isInternal, let gatewayMode, gatewayMode != .nat {
            error(
                "an internal network has no gateway mode", at: seen["gateway-mode"]!,
                hint: "internal networks have no outside connectivity; remove 'gateway-mode \(gatewayMode.rawValue)'")
        }
        if isInternal && masquerade == true {
            error(
                "an internal network cannot masquerade", at: seen["masquerade"]!,
                hint: "internal networks have no outside connectivity; remove 'masquerade on' or 'internal'")
        }
        if bridge == "docker0" {
            checkDaemonFlag("icc", "icc", value: icc, words: ("allow", "deny"), flag: "--icc", in: block)
            checkDaemonFlag(
                "ip-masquerade", "masquerade", value: masquerade, words: ("on", "off"), flag: "--ip-masq", in: block)
        }
        let subnet6 = subnets[.ipv6]?.0
        networkPositions[name.value] = networkPositions[name.value] ?? networks.count
        networks.append(
            Network(
                name: name.value, bridge: bridge, subnet4: subnet4.0,
                gateway4: gateway[.ipv4] ?? subnet4.0.first.adding(1),
                subnet6: subnet6, gateway6: gateway[.ipv6] ?? subnet6.map { $0.first.adding(1) },
                icc: icc ?? (bridge == "docker0" ? host.icc : true), internal: isInternal,
                masquerade: masquerade ?? (bridge == "docker0" ? host.ipMasquerade : true),
                hostBinding: hostBinding, gatewayMode4: gatewayMode ?? .nat,
                gatewayModeOrigin: seen["gateway-mode"].map {
                    Origin("gateway-mode \(gatewayMode?.rawValue ?? "")", at: $0.start)
                },
                origin: Origin("network \(name.value)", at: block.keyword.range.start)))
    }

    /// Docker's default network takes its `icc` and masquerading from the daemon's flags (the
    /// host settings), never from options of its own: a network setting on `docker0` that
    /// contradicts the host's cannot be what any daemon does.
    private mutating func checkDaemonFlag(
        _ hostKey: String, _ networkKey: String, value: Bool?, words: (on: String, off: String), flag: String,
        in block: Block
    ) {
        guard let value, let hostLocation = host.locations[hostKey],
            value != (hostKey == "icc" ? host.icc : host.ipMasquerade),
            let setting = block.settings.first(where: { $0.keyword.value == networkKey })
        else { return }
        error(
            "'\(networkKey) \(value ? words.on : words.off)' contradicts the host's '\(hostKey) \(value ? words.off : words.on)' (line \(hostLocation.line))",
            at: setting.keyword.range,
            hint:
                "bridge docker0 is Docker's default network, whose \(networkKey) is the daemon's \(flag); set it in one place"
        )
    }

    /// The host's `icc` and `ip-masquerade` are daemon flags that only configure the default
    /// network; without one in the policy they change nothing, which is worth saying.
    private mutating func warnAboutDaemonFlagsWithoutDefaultNetwork() {
        guard !networks.contains(where: \.isDefaultBridge) else { return }
        for (key, networkKey, isOn) in [
            ("icc", "icc", host.icc), ("ip-masquerade", "masquerade", host.ipMasquerade),
        ] where !isOn {
            guard let location = host.locations[key] else { continue }
            warning(
                "host '\(key)' has no effect: it configures only Docker's default network (bridge docker0), which the policy does not declare",
                at: SourceRange(start: location, length: key.count),
                hint:
                    "Docker's --\(key == "icc" ? "icc" : "ip-masq") flag leaves other networks alone; set '\(networkKey) \(key == "icc" ? "deny" : "off")' on each network it should apply to"
            )
        }
    }

    // MARK: - lists

    private mutating func checkList(_ list: ListBlock) {
        let name = list.name.value
        if list.items.isEmpty {
            error("\(list.kind.rawValue) '\(name)' is empty", at: list.name.range)
        }
        switch list.kind {
        case .addresses:
            addressSets[name] = list.items.compactMap { prefix($0, what: "address or prefix") }.map {
                $0.hasHostBits && !$0.isHost ? $0.network : $0
            }
        case .service:
            services[name] = list.items.compactMap { portSpec($0, requireProtocol: true) }
        case .group:
            var members: [String] = []
            for item in list.items {
                guard let kind = endpointKinds[item.value]?.kind else {
                    unknownName(item, expected: "container", among: .containers)
                    continue
                }
                guard kind == "container" else {
                    error(
                        "group members must be containers; '\(item.value)' is a \(kind)", at: item.range,
                        hint: kind == "group" ? "list the group's containers instead" : nil)
                    continue
                }
                if members.contains(item.value) {
                    error("'\(item.value)' is listed twice in group '\(name)'", at: item.range)
                }
                members.append(item.value)
            }
            groups[name] = members
        }
    }

    /// The declared names an unknown name may be a typo of.
    enum Candidates {
        case containers
        case networks
        case endpoints
        case addressSets
        case services
    }

    private func names(_ candidates: Candidates) -> [String] {
        switch candidates {
        case .containers: endpointKinds.filter { $0.value.kind == "container" }.map(\.key).sorted()
        case .networks: endpointKinds.filter { $0.value.kind == "network" }.map(\.key).sorted()
        case .endpoints: endpointKinds.keys.sorted()
        case .addressSets: addressSets.keys.sorted()
        case .services: services.keys.sorted()
        }
    }

    /// A hint compares the name with every candidate; past this many unknown names hints
    /// suggest nothing, so that a file of thousands of typos is still checked in linear time.
    static let suggestionLimit = 100
    private var suggestionsMade = 0

    mutating func unknownName(_ name: Located<String>, expected: String, among candidates: Candidates) {
        guard suggestionsMade < Self.suggestionLimit else {
            error(
                "unknown \(expected) '\(name.value)'", at: name.range,
                hint: "check the spelling (names are suggested for the first \(Self.suggestionLimit) unknown names)")
            return
        }
        suggestionsMade += 1
        let candidates = names(candidates)
        let suggestion = closestMatch(name.value, in: candidates)
        error(
            "unknown \(expected) '\(name.value)'", at: name.range,
            hint: suggestion.map { "did you mean '\($0)'?" }
                ?? (candidates.isEmpty ? "none is declared" : "known: \(candidates.prefix(8).joined(separator: ", "))"))
    }

    // MARK: - container

    private var usedAddresses: [IPAddress: String] = [:]

    private mutating func checkContainer(_ block: Block, networksDeclaredBefore: Int) {
        let name = block.name!.value
        var container = Container(
            name: name, attachments: [], publishes: [],
            origin: Origin("container \(name)", at: block.keyword.range.start))
        var exposed: [(PortSpec, Located<String>)] = []
        var publishAll: Setting?
        /// The container port the first `publish` or `expose` names: where Go's map order starts.
        var firstPort: DockerPortOrder.Port?
        for setting in block.settings {
            switch setting.keyword.value {
            case "attach":
                checkAttach(setting, into: &container, visibleNetworks: networksDeclaredBefore)
            case "expose":
                for value in setting.values {
                    guard let spec = portSpec(value) else { continue }
                    exposed.append((spec, value))
                    firstPort = firstPort ?? DockerPortOrder.Port(spec.ports.first, spec.transport)
                }
            case "publish-all":
                if publishAll != nil { error("'publish-all' given twice", at: setting.keyword.range) }
                publishAll = setting
            case "publish":
                guard let publish = checkPublish(setting, container: container) else { continue }
                container.publishes.append(publish)
                firstPort = firstPort ?? DockerPortOrder.Port(publish.containerPorts.first, publish.transport)
            default: break
            }
        }
        let explicitPublishes = container.publishes.count
        if container.attachments.isEmpty && !block.settings.contains(where: { $0.keyword.value == "attach" }) {
            error(
                "container '\(name)' is not attached to any network", at: block.name!.range,
                hint: "add a line such as 'attach bridge 172.17.0.2'")
        }
        if let publishAll {
            if exposed.isEmpty {
                error(
                    "'publish-all' needs exposed ports", at: publishAll.keyword.range,
                    hint: "list them with 'expose 80/tcp, 53/udp' (what the image's EXPOSE says)")
            }
            let (sources, text) = allowList(publishAll.clause("from"))
            // Docker publishes each port of an exposed range on a host port of its own.
            for (spec, _) in exposed {
                // Docker gives an exposed port a daemon-chosen binding only when it has no binding.
                for port in spec.ports.first...spec.ports.last
                where !container.publishes.contains(where: {
                    $0.transport == spec.transport && $0.containerPorts.contains(port)
                }) {
                    container.publishes.append(
                        Publish(
                            hostAddress: nil, hostPorts: PortRange(0), hostPortIsEphemeral: true,
                            containerPorts: PortRange(port), transport: spec.transport,
                            allowedSources: sources, allowedSourcesText: text,
                            origin: Origin(
                                "publish-all \(port)/\(spec.transport.rawValue) (container \(name))",
                                at: publishAll.keyword.range.start)))
                }
            }
        }
        container.bindingOrder = Self.bindingOrder(
            container.publishes, explicit: explicitPublishes, exposed: exposed.map(\.0), startingAt: firstPort)
        for publish in container.publishes where publish.hostAddress?.family == .ipv6 {
            if container.attachments.allSatisfy({ $0.address6 == nil }) {
                error(
                    "host address \(publish.hostAddress!) is IPv6 but container '\(name)' has no IPv6 address",
                    at: SourceRange(start: publish.origin.location, length: 7),
                    hint: "attach it with an IPv6 address too, or publish on an IPv4 host address")
            }
        }
        // Docker accepts `docker run --network INTERNAL -p ...` and maps nothing.
        if !container.attachments.isEmpty
            && container.attachments.allSatisfy({ network($0.network)?.internal == true })
        {
            for setting in block.settings where ["publish", "publish-all"].contains(setting.keyword.value) {
                warning(
                    "'\(setting.keyword.value)' has no effect: container '\(name)' is attached only to internal networks",
                    at: setting.keyword.range,
                    hint:
                        "Docker maps no ports for a container without a non-internal network; attach it to one, or remove the publish"
                )
            }
        }
        containerPositions[container.name] = containerPositions[container.name] ?? containers.count
        containers.append(container)
    }

    private func network(_ name: String) -> Network? { networkPositions[name].map { networks[$0] } }

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

    /// `visibleNetworks`: how many networks were declared above the container.
    private mutating func checkAttach(_ setting: Setting, into container: inout Container, visibleNetworks: Int) {
        let networkName = setting.values[0]
        let addressText = setting.values[1]
        guard let position = networkPositions[networkName.value], position < visibleNetworks else {
            let declaredBefore = declarationOrder.prefix { $0 != .startContainer(container.name) }
            if declaredBefore.contains(.createNetwork(networkName.value)) {
                return  // the network has errors of its own, already reported
            }
            if let later = network(networkName.value) {
                error(
                    "network '\(networkName.value)' is declared after container '\(container.name)'",
                    at: networkName.range,
                    hint: "move 'network \(later.name)' above the container: networks are created in file order")
            } else if let kind = endpointKinds[networkName.value]?.kind {
                error("'\(networkName.value)' is a \(kind), not a network", at: networkName.range)
            } else {
                unknownName(networkName, expected: "network", among: .networks)
            }
            return
        }
        let network = networks[position]
        guard let address = address(addressText, what: "container address") else { return }
        let subnet = address.family == .ipv4 ? network.subnet4 : network.subnet6
        guard let subnet else {
            error(
                "\(address) is IPv6 but network '\(network.name)' has no IPv6 subnet", at: addressText.range,
                hint: "add 'subnet fd00:.../64' to the network")
            return
        }
        if !subnet.contains(address) {
            error(
                "address \(address) is outside the subnet \(subnet) of network '\(network.name)'", at: addressText.range
            )
            return
        }
        let gateway = address.family == .ipv4 ? network.gateway4 : network.gateway6
        if address == gateway {
            error("address \(address) is the gateway of network '\(network.name)'", at: addressText.range)
            return
        }
        if address == subnet.first || (address.family == .ipv4 && address == subnet.last) {
            error(
                "address \(address) is the \(address == subnet.first ? "network" : "broadcast") address of \(subnet)",
                at: addressText.range)
            return
        }
        var mac: String?
        if let macValue = setting.clause("mac")?.values.first {
            if Checker.isMAC(macValue.value) {
                mac = macValue.value.lowercased()
            } else {
                error(
                    "invalid MAC address '\(macValue.value)'", at: macValue.range,
                    hint: "write six hex pairs, e.g. 02:42:ac:11:00:02")
            }
        }
        let index = container.attachments.firstIndex { $0.network == network.name }
        if let index {
            let existing =
                address.family == .ipv4 ? container.attachments[index].address4 : container.attachments[index].address6
            if existing != nil {
                error(
                    "container '\(container.name)' already has an \(address.family == .ipv4 ? "IPv4" : "IPv6") address on '\(network.name)'",
                    at: addressText.range, hint: "a container has one address per family on each network")
                return
            }
        }
        if let owner = usedAddresses[address] {
            error(
                "address \(address) is already used by container '\(owner)'", at: addressText.range,
                hint: "two containers cannot share an address")
            return
        }
        usedAddresses[address] = container.name
        if let index {
            if address.family == .ipv4 {
                container.attachments[index].address4 = address
            } else {
                container.attachments[index].address6 = address
            }
            if mac != nil { container.attachments[index].mac = mac }
            return
        }
        if address.family == .ipv6 {
            error(
                "attach '\(network.name)' with an IPv4 address first", at: addressText.range,
                hint: "Docker gives every bridge endpoint an IPv4 address; add the IPv6 one on a second attach line")
            return
        }
        container.attachments.append(
            Attachment(network: network.name, address4: address, address6: nil, mac: mac))
    }

    static func isMAC(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && $0.allSatisfy { $0.isHexDigit && $0.isASCII } }
    }

    /// Resolves a `from` clause: address-set names and literal prefixes.
    private mutating func allowList(_ clause: Clause?) -> ([IPPrefix], String) {
        guard let clause else { return ([], "") }
        var prefixes: [IPPrefix] = []
        for value in clause.values {
            if let set = addressSets[value.value] {
                prefixes += set
            } else if value.value.first?.isLetter == true && !value.value.utf8.contains(UInt8(ascii: ":")) {
                unknownName(value, expected: "address set", among: .addressSets)
            } else if let p = prefix(value, what: "source address") {
                prefixes.append(p.isHost ? p : p.network)
            }
        }
        return (prefixes, clause.values.map(\.value).joined(separator: ", "))
    }

    /// `[HOST-IP:]PORTS -> PORTS[/PROTO]`, or with the host port chosen by the daemon,
    /// `PORT[/PROTO]` or `HOST-IP -> PORT[/PROTO]` (Docker's `-p HOST-IP::PORT`).
    private mutating func checkPublish(_ setting: Setting, container: Container) -> Publish? {
        let left = setting.values[0]
        let (sources, sourcesText) = allowList(setting.clause("from"))
        let target = setting.clause("->")?.values.first
        let hostAddressAlone = target == nil ? nil : Self.bareHostAddress(left.value)
        if target == nil || hostAddressAlone != nil {
            let written = target ?? left
            guard let spec = portSpec(written) else { return nil }
            if !spec.ports.isSingle {
                error(
                    "publishing a container port range needs host ports", at: written.range,
                    hint: "write publish \(spec.ports) -> \(written.value) to use the same host ports")
                return nil
            }
            return Publish(
                hostAddress: hostAddressAlone, hostPorts: PortRange(0), hostPortIsEphemeral: true,
                containerPorts: spec.ports, transport: spec.transport,
                allowedSources: sources, allowedSourcesText: sourcesText,
                origin: Origin(
                    "publish \(target == nil ? "" : "\(left.value) -> ")\(written.value) (container \(container.name))",
                    at: setting.keyword.range.start))
        }
        guard let target else { return nil }
        var hostAddress: IPAddress?
        var portsText = Substring(left.value)
        var portsColumnOffset = 0
        if let colon = left.value.lastIndex(of: ":") {
            var addressText = left.value[..<colon]
            if addressText.hasPrefix("[") && addressText.hasSuffix("]") {
                addressText = addressText.dropFirst().dropLast()
            } else if addressText.utf8.contains(UInt8(ascii: ":")) {
                error(
                    "IPv6 host address must be in brackets", at: left.range,
                    hint: "write publish [\(addressText)]:\(left.value[left.value.index(after: colon)...]) -> ...")
                return nil
            }
            guard let a = IPAddress(addressText) else {
                error(
                    "invalid host address '\(addressText)'", at: left.range, hint: "write 127.0.0.1:8080 or [::1]:8080")
                return nil
            }
            hostAddress = a
            portsText = left.value[left.value.index(after: colon)...]
            portsColumnOffset = left.value.distance(from: left.value.startIndex, to: colon) + 1
        }
        let portsRange = SourceRange(
            start: SourceLocation(
                file: left.range.start.file, line: left.range.start.line,
                column: left.range.start.column + portsColumnOffset),
            length: portsText.count)
        if portsText.utf8.contains(UInt8(ascii: "/")) {
            error(
                "the protocol goes after the container port", at: portsRange,
                hint:
                    "write publish \(portsText.split(separator: "/")[0]) -> PORT/\(portsText.split(separator: "/").last ?? "tcp")"
            )
            return nil
        }
        guard let hostPorts = portRange(portsText, at: portsRange), let spec = portSpec(target) else { return nil }
        if hostPorts.count != spec.ports.count {
            error(
                "range length mismatch: \(hostPorts.count) host port\(hostPorts.count == 1 ? "" : "s") for \(spec.ports.count) container port\(spec.ports.count == 1 ? "" : "s")",
                at: target.range, hint: "host and container ranges must have the same length")
            return nil
        }
        return Publish(
            hostAddress: hostAddress, hostPorts: hostPorts, hostPortIsEphemeral: false, containerPorts: spec.ports,
            transport: spec.transport,
            allowedSources: sources, allowedSourcesText: sourcesText,
            origin: Origin(
                "publish \(left.value) -> \(target.value) (container \(container.name))",
                at: setting.keyword.range.start))
    }

    /// A host address written without a port: `127.0.0.1` or `[::1]`.
    static func bareHostAddress(_ text: String) -> IPAddress? {
        if text.hasPrefix("[") && text.hasSuffix("]") {
            return IPAddress(text.dropFirst().dropLast()).flatMap { $0.family == .ipv6 ? $0 : nil }
        }
        return IPAddress(Substring(text)).flatMap { $0.family == .ipv4 ? $0 : nil }
    }

    /// The host address a publish binds: its own, else its network's `host-binding`; nil for
    /// every address.
    private func boundAddress(_ publish: Publish, of container: Container) -> IPAddress? {
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
    private mutating func allocateEphemeralPorts() {
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

    private mutating func checkPublishConflicts() {
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

    // MARK: - flows and egress

    private mutating func endpoints(_ value: Located<String>) -> [Endpoint]? {
        switch endpointKinds[value.value]?.kind {
        case "container": return [.container(value.value)]
        case "network": return [.network(value.value)]
        case "group": return groups[value.value]?.map { .container($0) } ?? []
        default:
            unknownName(value, expected: "container, group or network", among: .endpoints)
            return nil
        }
    }

    private mutating func ports(of rule: Setting) -> [PortSpec]? {
        var specs: [PortSpec] = []
        var ok = true
        for value in rule.clause("port")?.values ?? [] {
            if let spec = portSpec(value) { specs.append(spec) } else { ok = false }
        }
        for value in rule.clause("service")?.values ?? [] {
            if let service = services[value.value] {
                specs += service
            } else if listNames["service \(value.value)"] == nil {
                unknownName(value, expected: "service", among: .services)
                ok = false
            }
        }
        return ok ? specs : nil
    }

    private mutating func checkRule(_ rule: Setting) -> PolicyRule? {
        let kind = PolicyRule.Kind(rawValue: rule.keyword.value)!
        let source = rule.values[0]
        let target = rule.clause("->")!.values[0]
        let sources = endpoints(source)
        var destinations: [Endpoint]? = []
        var egress = EgressDestination.anywhere
        if kind == .egress {
            if target.value == "any" {
                egress = .anywhere
            } else if let set = addressSets[target.value] {
                egress = .prefixes(set)
            } else if target.value.first?.isLetter == true && !target.value.utf8.contains(UInt8(ascii: ":")) {
                unknownName(target, expected: "address set (or 'any')", among: .addressSets)
                destinations = nil
            } else if let p = prefix(target, what: "egress destination") {
                egress = .prefixes([p.isHost ? p : p.network])
            } else {
                destinations = nil
            }
        } else {
            destinations = endpoints(target)
        }
        guard let sources, let destinations, let ports = ports(of: rule) else { return nil }
        if sources.isEmpty || (kind != .egress && destinations.isEmpty) {
            error("'\(rule.keyword.value)' names an empty group", at: rule.keyword.range)
            return nil
        }
        if kind == .egress {
            for case .container(let name) in sources {
                let attachments = containerPositions[name].map { containers[$0].attachments } ?? []
                if !attachments.isEmpty && attachments.allSatisfy({ network($0.network)?.internal == true }) {
                    error(
                        "'\(name)' is attached only to internal networks, so it has no egress to allow",
                        at: source.range, hint: "internal networks have no route off the host")
                }
            }
            for case .network(let name) in sources where network(name)?.internal == true {
                error(
                    "network '\(name)' is internal, so it has no egress to allow", at: source.range,
                    hint: "internal networks have no route off the host")
            }
        }
        var text = "\(kind.rawValue) \(source.value) -> \(target.value)"
        if let p = rule.clause("port") { text += " port " + p.values.map(\.value).joined(separator: ",") }
        if let s = rule.clause("service") { text += " service " + s.values.map(\.value).joined(separator: ",") }
        return PolicyRule(
            kind: kind, sources: sources, destinations: destinations, egressDestination: egress, ports: ports,
            text: text,
            origin: Origin(text, at: rule.keyword.range.start))
    }
}
