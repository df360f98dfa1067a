import PortcullisNet
import PortcullisSyntax

/// The `host` block: the daemon's settings and the machine's interfaces.
extension Checker {
    mutating func checkHost(_ block: Block) {
        var seen: [String: SourceRange] = [:]
        for setting in block.settings {
            let key = setting.keyword.value
            if let first = seen[key] {
                error("'\(key)' set twice", at: setting.keyword.range, hint: "first set at line \(first.start.line)")
                continue
            }
            seen[key] = setting.keyword.range
            host.locations[key] = setting.keyword.range.start
            switch key {
            case "external":
                for name in setting.values where checkInterfaceName(name) { host.externalInterfaces.append(name.value) }
            case "log-drops":
                host.logDrops = checkLogDrops(setting)
            default:
                if let value = value(of: setting) { checkHostValue(key, value) }
            }
        }
    }

    /// A host setting of one value (the parser only lets known settings through).
    private mutating func checkHostValue(_ key: String, _ value: Located<String>) {
        switch key {
        case "layout": host.layout = value.value
        case "backend": host.backend = value.value
        case "userland-proxy": host.userlandProxy = onOff(value) ?? true
        case "icc": host.icc = onOff(value, "allow", "deny") ?? true
        case "ip-masquerade": host.ipMasquerade = onOff(value) ?? true
        case "forward-policy": host.forwardPolicyDrop = onOff(value, "drop", "accept")
        case "count-drops": host.countDrops = onOff(value) ?? false
        case "ip6tables": host.ip6tables = onOff(value) ?? false
        case "unknown-containers": host.unknownContainersDrop = onOff(value, "drop", "allow") ?? false
        case "ephemeral-ports":
            guard let range = portRange(Substring(value.value), at: value.range) else { return }
            if range.count < 2 {
                error("the ephemeral port range needs at least two ports", at: value.range)
            } else {
                host.ephemeralPorts = range
            }
        default:
            break
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
}
