/// What iptables' tables are in nftables terms: the built-in chains of each table, the hooks
/// they attach to and their priorities, as iptables-nft registers them. Layouts that write
/// iptables tables and readers of `iptables-save` output share this.
public enum XtablesTableKind: String, Sendable, CaseIterable {
    case raw
    case mangle
    case filter
    case nat

    public var builtinChains: [(name: String, hook: Hook)] {
        switch self {
        case .raw: [("PREROUTING", .prerouting), ("OUTPUT", .output)]
        case .filter: [("INPUT", .input), ("FORWARD", .forward), ("OUTPUT", .output)]
        case .nat: [("PREROUTING", .prerouting), ("INPUT", .input), ("OUTPUT", .output), ("POSTROUTING", .postrouting)]
        case .mangle:
            [
                ("PREROUTING", .prerouting), ("INPUT", .input), ("FORWARD", .forward), ("OUTPUT", .output),
                ("POSTROUTING", .postrouting),
            ]
        }
    }

    public func priority(_ hook: Hook) -> Int {
        switch self {
        case .raw: -300
        case .mangle: -150
        case .filter: 0
        case .nat: hook == .prerouting || hook == .output ? -100 : 100
        }
    }

    public func chainType(_ hook: Hook) -> ChainType {
        switch self {
        case .filter, .raw: .filter
        case .nat: .nat
        case .mangle: hook == .output ? .route : .filter
        }
    }

    /// The base chain a built-in chain of this table is, with the given policy.
    public func baseChain(_ name: String, policy: ChainPolicy) -> BaseChain? {
        guard let hook = builtinChains.first(where: { $0.name == name })?.hook else { return nil }
        return BaseChain(type: chainType(hook), hook: hook, priority: priority(hook), policy: policy)
    }
}
