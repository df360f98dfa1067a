/// How many values a setting or clause takes.
public enum Arity: Sendable, Hashable {
    case none
    case one
    case two
    /// One, and a second if the line goes on with a word that is not a clause keyword
    /// (`attach front` or `attach front 198.18.1.10`).
    case oneOrTwo
    /// One or more, separated by commas.
    case list
}

/// The shape of a setting: its positional values and the clauses that may follow.
public struct SettingShape: Sendable {
    public let positional: Arity
    public let clauses: [(keyword: String, arity: Arity, required: Bool)]
    /// Names the positional values in "expected ..." messages.
    public let valueDescription: String

    init(_ positional: Arity, _ valueDescription: String, clauses: [(String, Arity, Bool)] = []) {
        self.positional = positional
        self.valueDescription = valueDescription
        self.clauses = clauses.map { (keyword: $0.0, arity: $0.1, required: $0.2) }
    }
}

/// The grammar of settings and rule statements; `docs/language.md` is its prose form.
public enum Grammar {
    public static let topLevelKeywords: [String] =
        ["include"] + BlockKind.allCases.map(\.rawValue) + ListKind.allCases.map(\.rawValue) + ruleKeywords
    public static let ruleKeywords = ["allow", "deny", "egress"]

    /// Every clause keyword, which an optional second value (`.oneOrTwo`) cannot be.
    static let clauseKeywords = Set(
        (rules.values.map(\.clauses) + settings.values.flatMap { $0.values.map(\.clauses) }).flatMap {
            $0.map(\.keyword)
        })

    /// Group items that select containers from an inventory instead of naming them:
    /// `compose PROJECT[/SERVICE]` and `label KEY[=VALUE]`.
    public static let groupSelectors = ["compose", "label"]

    /// Clauses whose value is free text (a log prefix): always written as a string.
    public static let textClauses: Set<String> = ["prefix"]

    static let portClauses: [(String, Arity, Bool)] = [("port", .list, false), ("service", .list, false)]

    public static let rules: [String: SettingShape] = [
        "allow": SettingShape(
            .one, "a source (container, group or network)", clauses: [("->", .one, true)] + portClauses),
        "deny": SettingShape(
            .one, "a source (container, group or network)", clauses: [("->", .one, true)] + portClauses),
        "egress": SettingShape(
            .one, "a source (container, group or network)", clauses: [("->", .one, true)] + portClauses),
    ]

    public static let settings: [BlockKind: [String: SettingShape]] = [
        .host: [
            "layout": SettingShape(.one, "a layout name"),
            "backend": SettingShape(.one, "a backend name"),
            "userland-proxy": SettingShape(.one, "'on' or 'off'"),
            "icc": SettingShape(.one, "'allow' or 'deny'"),
            "ip-masquerade": SettingShape(.one, "'on' or 'off'"),
            "forward-policy": SettingShape(.one, "'accept' or 'drop'"),
            "external": SettingShape(.list, "an interface name"),
            "ephemeral-ports": SettingShape(.one, "a port range such as 32768-60999"),
            "log-drops": SettingShape(.none, "", clauses: [("rate", .one, false), ("prefix", .one, false)]),
            "count-drops": SettingShape(.one, "'on' or 'off'"),
            "ip6tables": SettingShape(.one, "'on' or 'off'"),
            "unknown-containers": SettingShape(.one, "'allow' or 'drop'"),
        ],
        .network: [
            "bridge": SettingShape(.one, "an interface name"),
            "subnet": SettingShape(.one, "a CIDR prefix"),
            "gateway": SettingShape(.one, "an address"),
            "icc": SettingShape(.one, "'allow' or 'deny'"),
            "internal": SettingShape(.none, ""),
            "masquerade": SettingShape(.one, "'on' or 'off'"),
            "host-binding": SettingShape(.one, "an address"),
            "gateway-mode": SettingShape(.one, "'nat', 'routed' or 'nat-unprotected'"),
        ],
        .container: [
            "attach": SettingShape(
                .oneOrTwo, "a network name (and an address, unless an inventory gives it)",
                clauses: [("mac", .one, false)]),
            "publish": SettingShape(
                .one, "a host port ([HOST-IP:]PORT[-END])",
                clauses: [("->", .one, false), ("from", .list, false), ("chosen", .one, false)]),
            "expose": SettingShape(.list, "a port such as 80/tcp"),
            "publish-all": SettingShape(.none, "", clauses: [("from", .list, false)]),
        ],
    ]
}
