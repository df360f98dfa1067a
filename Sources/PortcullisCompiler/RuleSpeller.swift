import PortcullisIR
import PortcullisRender

/// Spells a rule the way the host's firewall prints it: `-A CHAIN ...` for iptables, nft
/// syntax for nftables, with the parts Portcullis keeps opaque quoted as read. Audit, explain
/// and import quote rules through it.
struct RuleSpeller {
    let firewall: Firewall

    /// The rule in `chain`; nftables needs its table, whose sets give lookups their key types.
    /// nil when the firewall has no words for it.
    func text(_ rule: Rule, chain: String, family: TableFamily, table: Table?) -> String? {
        switch firewall {
        case .iptables:
            return try? IptablesRenderer().renderRule(rule, chain: chain, family: family)
        case .nftables:
            guard let table else { return nil }
            let modelled = Rule(
                rule.matches.filter {
                    if case .opaque = $0 { return false }
                    return true
                }, effects: rule.effects, Self.isOpaque(rule.action) ? nil : rule.action, comment: rule.comment)
            guard let line = try? NftTextRenderer().renderRule(modelled, in: table) else { return nil }
            let opaqueMatches = rule.matches.compactMap { match -> String? in
                if case .opaque(let text) = match { return text }
                return nil
            }
            var words = opaqueMatches + [line]
            if case .opaque(let text)? = rule.action { words.append(text) }
            return words.filter { !$0.isEmpty }.joined(separator: " ")
        }
    }

    static func isOpaque(_ action: Action?) -> Bool {
        if case .opaque? = action { return true }
        return false
    }
}
