/// One table of `iptables-save` text: chain declarations and rules, in order.
struct SavedTable: Equatable {
    struct ChainDeclaration: Equatable {
        let name: String
        /// `ACCEPT`/`DROP` for built-in chains, `-` for user chains.
        var policy: String
        var counters: String
    }

    struct RuleLine: Equatable {
        let chain: String
        /// The rule as `-A CHAIN ...`, without counters.
        let text: String
        /// `[packets:bytes]` as iptables-save -c prints it, kept for foreign rules.
        let counters: String
    }

    let name: String
    var chains: [ChainDeclaration] = []
    var rules: [RuleLine] = []

    /// Parses every table in `iptables-save [-c]` output.
    static func parseAll(_ text: String) -> [SavedTable] {
        var tables: [SavedTable] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line == "COMMIT" { continue }
            if line.hasPrefix("*") {
                tables.append(SavedTable(name: String(line.dropFirst())))
            } else if line.hasPrefix(":"), !tables.isEmpty {
                let parts = line.dropFirst().split(separator: " ")
                tables[tables.count - 1].chains.append(
                    ChainDeclaration(
                        name: String(parts[0]), policy: parts.count > 1 ? String(parts[1]) : "-",
                        counters: parts.count > 2 ? String(parts[2]) : "[0:0]"))
            } else if !tables.isEmpty {
                var counters = "[0:0]"
                var rule = Substring(line)
                if rule.hasPrefix("["), let close = rule.firstIndex(of: "]") {
                    counters = String(rule[...close])
                    rule = rule[rule.index(after: close)...].drop { $0 == " " }
                }
                let words = rule.split(separator: " ", maxSplits: 2)
                guard words.count >= 2, words[0] == "-A" else { continue }
                tables[tables.count - 1].rules.append(
                    RuleLine(chain: String(words[1]), text: String(rule), counters: counters))
            }
        }
        return tables
    }

    /// The table as `iptables-restore -c` input.
    func rendered(withCounters: Bool) -> String {
        var lines = ["*\(name)"]
        for chain in chains {
            lines.append(":\(chain.name) \(chain.policy) \(withCounters ? chain.counters : "[0:0]")")
        }
        for rule in rules { lines.append(withCounters ? "\(rule.counters) \(rule.text)" : rule.text) }
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Equal in everything but counters.
    func sameRules(as other: SavedTable) -> Bool {
        rendered(withCounters: false) == other.rendered(withCounters: false)
    }
}

/// Ownership for the iptables backend. Portcullis owns, in each table it writes: the user
/// chains its layout declares, and the rules in built-in chains that it wrote (this or the
/// previous generation). Everything else in the table (other tools' chains, and their rules in
/// INPUT, FORWARD, PREROUTING, POSTROUTING...) is foreign and is carried over unchanged, with its
/// counters. Owned rules come first in each built-in chain, as Docker inserts its own at the top.
enum IptablesOwnership {
    /// The new content of one table: `wanted` (our rendered table) merged into `current`
    /// (the live table), given what we wrote before (`previous`).
    /// - Parameter restoredPolicies: built-in chain policies to put back when the table is no
    ///   longer wanted (from the snapshot taken before Portcullis first changed them).
    static func merge(
        current: SavedTable?, wanted: SavedTable?, previous: SavedTable?, restoredPolicies: [String: String] = [:]
    ) -> SavedTable {
        let name = wanted?.name ?? previous?.name ?? current!.name
        let ownedChains = Set(
            ((wanted?.chains ?? []) + (previous?.chains ?? [])).filter { $0.policy == "-" }.map(\.name))
        let ownedBuiltinRules = Set(
            ((wanted?.rules ?? []) + (previous?.rules ?? [])).filter { !ownedChains.contains($0.chain) }.map(\.text))
        let currentChains = current?.chains ?? []
        let wantedChains = wanted?.chains ?? []

        var merged = SavedTable(name: name)
        // Built-in chains: those the table has, in its order; our policy where we set one.
        let builtins = (currentChains.filter { $0.policy != "-" } + wantedChains.filter { $0.policy != "-" })
            .reduce(into: [SavedTable.ChainDeclaration]()) { list, chain in
                if !list.contains(where: { $0.name == chain.name }) { list.append(chain) }
            }
        for chain in builtins {
            var declaration = currentChains.first { $0.name == chain.name } ?? chain
            if let ours = wantedChains.first(where: { $0.name == chain.name }) {
                declaration.policy = ours.policy
            } else if wanted == nil, previous?.chains.contains(where: { $0.name == chain.name }) == true {
                // What was there before Portcullis set it; a table that did not exist yet had
                // the kernel's default for built-in chains.
                declaration.policy = restoredPolicies[chain.name] ?? "ACCEPT"
            }
            merged.chains.append(declaration)
        }
        let foreignChains = currentChains.filter { $0.policy == "-" && !ownedChains.contains($0.name) }
        let ourChains = wantedChains.filter { $0.policy == "-" }
        merged.chains += (foreignChains + ourChains).sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }

        let foreignRules = (current?.rules ?? []).filter {
            !ownedChains.contains($0.chain) && !ownedBuiltinRules.contains($0.text)
        }
        for chain in merged.chains {
            merged.rules += (wanted?.rules ?? []).filter { $0.chain == chain.name }
            merged.rules += foreignRules.filter { $0.chain == chain.name }
        }
        return merged
    }
}
