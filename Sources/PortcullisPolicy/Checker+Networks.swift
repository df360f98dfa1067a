import PortcullisNet
import PortcullisSyntax

/// `network` blocks: each setting on its own, then the settings against each other and
/// against the networks declared above.
extension Checker {
    /// A network block's settings that passed their own checks.
    struct NetworkSettings {
        var bridge: Located<String>?
        var subnets: [IPFamily: (prefix: IPPrefix, range: SourceRange)] = [:]
        var gateways: [IPFamily: (address: IPAddress, written: Located<String>)] = [:]
        var icc: Bool?
        var isInternal = false
        var masquerade: Bool?
        var hostBinding: Located<IPAddress>?
        var gatewayMode: GatewayMode?
        /// Where each setting was first written.
        var seen: [String: SourceRange] = [:]
    }

    mutating func checkNetwork(_ block: Block) {
        guard let name = block.name else { return }  // reported with the names
        let settings = networkSettings(block)
        guard let bridge = settings.bridge else {
            if settings.seen["bridge"] == nil {
                error(
                    "network '\(name.value)' has no bridge", at: name.range,
                    hint: "add a line such as 'bridge br-\(name.value.prefix(12))'")
            }
            return
        }
        guard let subnet4 = settings.subnets[.ipv4]?.prefix else {
            if settings.seen["subnet"] != nil && settings.subnets.isEmpty { return }  // the subnet has its own error
            error(
                "network '\(name.value)' has no IPv4 subnet", at: name.range,
                hint:
                    "add a line such as 'subnet 198.18.1.0/24'; IPv6-only networks are not supported by Docker's bridge driver"
            )
            return
        }
        let gateway = checkGateways(settings)
        claimBridge(bridge, for: name.value)
        checkSubnetOverlaps(settings)
        checkNetworkConsistency(settings, bridge: bridge.value, in: block)
        let subnet6 = settings.subnets[.ipv6]?.prefix
        networkPositions[name.value] = networkPositions[name.value] ?? networks.count
        networks.append(
            Network(
                name: name.value, bridge: bridge.value, subnet4: subnet4,
                gateway4: gateway[.ipv4] ?? subnet4.first.adding(1),
                subnet6: subnet6, gateway6: gateway[.ipv6] ?? subnet6.map { $0.first.adding(1) },
                icc: settings.icc ?? (bridge.value == "docker0" ? host.icc : true), internal: settings.isInternal,
                masquerade: settings.masquerade ?? (bridge.value == "docker0" ? host.ipMasquerade : true),
                hostBinding: settings.hostBinding?.value, gatewayMode4: settings.gatewayMode ?? .nat,
                gatewayModeOrigin: settings.seen["gateway-mode"].map {
                    Origin("gateway-mode \(settings.gatewayMode?.rawValue ?? "")", at: $0.start)
                },
                origin: Origin("network \(name.value)", at: block.keyword.range.start)))
    }

    private mutating func networkSettings(_ block: Block) -> NetworkSettings {
        var settings = NetworkSettings()
        for setting in block.settings {
            let key = setting.keyword.value
            let repeatable = key == "subnet" || key == "gateway"
            if !repeatable, let first = settings.seen[key] {
                error("'\(key)' set twice", at: setting.keyword.range, hint: "first set at line \(first.start.line)")
                continue
            }
            settings.seen[key] = settings.seen[key] ?? setting.keyword.range
            if key == "internal" {
                settings.isInternal = true
            } else if let value = value(of: setting) {
                readNetworkSetting(key, value, into: &settings)
            }
        }
        return settings
    }

    private mutating func readNetworkSetting(
        _ key: String, _ value: Located<String>, into settings: inout NetworkSettings
    ) {
        switch key {
        case "bridge":
            if checkInterfaceName(value) { settings.bridge = value }
        case "subnet":
            readSubnet(value, into: &settings)
        case "gateway":
            guard let address = address(value, what: "gateway") else { return }
            if settings.gateways[address.family] != nil {
                error("second \(address.family == .ipv4 ? "IPv4" : "IPv6") gateway", at: value.range)
                return
            }
            settings.gateways[address.family] = (address, value)
        case "icc": settings.icc = onOff(value, "allow", "deny")
        case "masquerade": settings.masquerade = onOff(value)
        case "host-binding":
            settings.hostBinding = address(value, what: "host binding address").map { Located($0, at: value.range) }
        case "gateway-mode":
            settings.gatewayMode = GatewayMode(rawValue: value.value)
            if settings.gatewayMode == nil {
                error(
                    "expected 'nat', 'routed' or 'nat-unprotected', found '\(value.value)'", at: value.range,
                    hint: "gateway-mode is Docker's com.docker.network.bridge.gateway_mode_ipv4; nat is the default")
            }
        default: break
        }
    }

    private mutating func readSubnet(_ value: Located<String>, into settings: inout NetworkSettings) {
        guard let subnet = prefix(value, what: "subnet") else { return }
        if settings.subnets[subnet.family] != nil {
            error(
                "second \(subnet.family == .ipv4 ? "IPv4" : "IPv6") subnet", at: value.range,
                hint: "a network has at most one IPv4 and one IPv6 subnet")
            return
        }
        if subnet.hasHostBits {
            error(
                "subnet '\(value.value)' has host bits set", at: value.range,
                hint: "did you mean \(subnet.network)? Set the bridge address with 'gateway'")
        }
        if subnet.family == .ipv4 && subnet.length > 30 {
            error("subnet '\(value.value)' is too small for a gateway and a container", at: value.range)
        }
        settings.subnets[subnet.family] = (subnet.network, value.range)
    }

    /// The gateways written, each inside its family's subnet and neither its network nor its
    /// broadcast address.
    private mutating func checkGateways(_ settings: NetworkSettings) -> [IPFamily: IPAddress] {
        var gateway: [IPFamily: IPAddress] = [:]
        for family in [IPFamily.ipv4, .ipv6] {
            guard let (address, written) = settings.gateways[family] else { continue }
            guard let subnet = settings.subnets[family]?.prefix else {
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
        return gateway
    }

    private mutating func claimBridge(_ bridge: Located<String>, for network: String) {
        if let owner = bridgeOwners[bridge.value] {
            error(
                "bridge '\(bridge.value)' is already used by network '\(owner)'", at: bridge.range,
                hint: "each network needs its own bridge")
        } else {
            bridgeOwners[bridge.value] = network
        }
    }

    private mutating func checkSubnetOverlaps(_ settings: NetworkSettings) {
        for family in [IPFamily.ipv4, .ipv6] {
            guard let (subnet, range) = settings.subnets[family] else { continue }
            let found = subnetOverlaps[family, default: SubnetOverlaps()].add(subnet, position: networks.count)
            guard found.count > 0 else { continue }
            var items = found.first.map { position in
                let other = networks[position]
                let otherSubnet = (family == .ipv4 ? other.subnet4 : other.subnet6).map { "\($0)" } ?? ""
                return "\(otherSubnet) of network '\(other.name)'"
            }
            let more = found.count - items.count
            if more > 0 { items.append("\(more) more network\(more == 1 ? "" : "s")") }
            let list = Self.listed(items)
            error("subnet \(subnet) overlaps \(list)", at: range, hint: "bridges need disjoint subnets")
        }
    }

    /// Settings that contradict each other, or the daemon's flags on its default network.
    private mutating func checkNetworkConsistency(_ settings: NetworkSettings, bridge: String, in block: Block) {
        if let hostBinding = settings.hostBinding, hostBinding.value.family != .ipv4 {
            error("host-binding must be an IPv4 address", at: hostBinding.range)
        }
        if settings.isInternal, let gatewayMode = settings.gatewayMode, gatewayMode != .nat,
            let written = settings.seen["gateway-mode"]
        {
            error(
                "an internal network has no gateway mode", at: written,
                hint: "internal networks have no outside connectivity; remove 'gateway-mode \(gatewayMode.rawValue)'")
        }
        if settings.isInternal && settings.masquerade == true, let written = settings.seen["masquerade"] {
            error(
                "an internal network cannot masquerade", at: written,
                hint: "internal networks have no outside connectivity; remove 'masquerade on' or 'internal'")
        }
        if bridge == "docker0" {
            checkDaemonFlag("icc", "icc", value: settings.icc, words: ("allow", "deny"), flag: "--icc", in: block)
            checkDaemonFlag(
                "ip-masquerade", "masquerade", value: settings.masquerade, words: ("on", "off"), flag: "--ip-masq",
                in: block)
        }
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
    mutating func warnAboutDaemonFlagsWithoutDefaultNetwork() {
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

    /// "a", "a and b", "a, b and c".
    private static func listed(_ items: [String]) -> String {
        guard let last = items.last, items.count > 1 else { return items.first ?? "" }
        return items.dropLast().joined(separator: ", ") + " and " + last
    }
}
