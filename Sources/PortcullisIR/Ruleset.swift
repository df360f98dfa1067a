import PortcullisNet

/// The firewall IR: tables of chains of rules, independent of iptables or nftables syntax.
///
/// Layouts build it from a checked policy; renderers turn it into iptables-restore text, nft
/// text or nft JSON; readers (audit, import) will build it back from a live ruleset, and the
/// packet evaluator (explain) walks it. Every rule carries its provenance so any of those can
/// say which policy line a rule came from.
public struct Ruleset: Sendable, Hashable {
    public var tables: [Table]

    public init(tables: [Table] = []) { self.tables = tables }

    public func table(_ family: TableFamily, _ name: String) -> Table? {
        tables.first { $0.family == family && $0.name == name }
    }
}

/// The kind of firewall a ruleset is built for. Docker writes different rules through its
/// nftables firewaller than through iptables, and some layouts exist for only one of them.
public enum Firewall: String, Sendable, Hashable, CaseIterable {
    case iptables
    case nftables
}

/// nftables table families; `ip` and `ip6` are also what iptables and ip6tables tables map to.
public enum TableFamily: String, Sendable, Hashable, CaseIterable {
    case ip
    case ip6
    case inet

    /// The address family a table's rules are about (`inet` tables hold both; nil).
    public var ipFamily: IPFamily? {
        switch self {
        case .ip: .ipv4
        case .ip6: .ipv6
        case .inet: nil
        }
    }
}

public struct Table: Sendable, Hashable {
    public var family: TableFamily
    public var name: String
    /// Chains in the order they are declared; renderers that need another order sort them.
    public var chains: [Chain]
    /// Named sets and maps (the native layout's lookups).
    public var sets: [NamedSet]
    /// Whether rules keep their matches in the order given, as `nft list` prints a table written
    /// natively for nftables (Docker's own `docker-bridges`). Otherwise nft renderers order them
    /// as iptables-nft does, for tables that stand for iptables ones.
    public var keepsMatchOrder: Bool

    public init(
        family: TableFamily, name: String, chains: [Chain] = [], sets: [NamedSet] = [], keepsMatchOrder: Bool = false
    ) {
        self.family = family
        self.name = name
        self.chains = chains
        self.sets = sets
        self.keepsMatchOrder = keepsMatchOrder
    }

    public func chain(_ name: String) -> Chain? { chains.first { $0.name == name } }

    public subscript(chain name: String) -> Chain {
        get { chains.first { $0.name == name }! }
        set {
            if let index = chains.firstIndex(where: { $0.name == name }) {
                chains[index] = newValue
            } else {
                chains.append(newValue)
            }
        }
    }
}

/// Netfilter hooks a base chain can attach to.
public enum Hook: String, Sendable, Hashable, CaseIterable {
    case prerouting
    case input
    case forward
    case output
    case postrouting
}

/// nftables chain types.
public enum ChainType: String, Sendable, Hashable {
    case filter
    case nat
    case route
}

/// A base chain's attachment to the packet path.
public struct BaseChain: Sendable, Hashable {
    public var type: ChainType
    public var hook: Hook
    /// nftables priority (filter = 0, dstnat = -100, srcnat = 100, raw = -300, mangle = -150).
    public var priority: Int
    public var policy: ChainPolicy

    public init(type: ChainType, hook: Hook, priority: Int, policy: ChainPolicy = .accept) {
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policy = policy
    }
}

public enum ChainPolicy: String, Sendable, Hashable {
    case accept
    case drop
}

public struct Chain: Sendable, Hashable {
    public var name: String
    /// Present for base chains (iptables built-in chains); nil for user chains.
    public var base: BaseChain?
    public var rules: [Rule]

    public init(name: String, base: BaseChain? = nil, rules: [Rule] = []) {
        self.name = name
        self.base = base
        self.rules = rules
    }

    public var isBuiltin: Bool { base != nil }
}

/// Where a rule came from: the policy statement and its location, or a layout's own reason
/// (for rules Docker writes on its own, such as the chain skeleton).
public struct Provenance: Sendable, Hashable, CustomStringConvertible {
    /// A short description: "publish 8080 -> 80/tcp (container web)", "docker daemon start".
    public var statement: String
    public var file: String?
    public var line: Int?
    public var column: Int?

    public init(statement: String, file: String? = nil, line: Int? = nil, column: Int? = nil) {
        self.statement = statement
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String {
        guard let file, let line else { return statement }
        return "\(statement) (\(file):\(line)\(column.map { ":\($0)" } ?? ""))"
    }
}

public struct Rule: Sendable, Hashable {
    /// Conditions, all of which must hold. Renderers print them in the canonical order of their
    /// target syntax; the order here is the order in which match modules were given.
    public var matches: [Match]
    /// Statements that run before the verdict and do not end evaluation (counter, log).
    public var effects: [Effect]
    public var action: Action?
    /// A comment written into the ruleset; validated by `RuleComment`.
    public var comment: RuleComment?
    /// Not rendered (so goldens do not churn with line numbers); used by explain and audit.
    public var provenance: Provenance?

    public init(
        _ matches: [Match], effects: [Effect] = [], _ action: Action?, comment: RuleComment? = nil,
        provenance: Provenance? = nil
    ) {
        self.matches = matches
        self.effects = effects
        self.action = action
        self.comment = comment
        self.provenance = provenance
    }
}
