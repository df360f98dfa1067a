import ArgumentParser
import Foundation
import PortcullisIR
import PortcullisKernel
import PortcullisReaders

/// A host's rules as read back into the IR, and where they came from.
struct HostRules {
    var ruleset = Ruleset()
    var source: String
    var firewall: Firewall
    /// Tables of families the IR does not hold, named so that nobody mistakes them for read.
    var unreadTables: [String] = []
}

/// Where `audit` and `explain` read a host's rules from: a saved ruleset or the live host.
struct HostRuleSource: ParsableArguments {
    @Option(help: "A saved ruleset ('-' for stdin): iptables-save output or an 'nft -j list ruleset' document.")
    var ruleset: String?

    @Flag(help: "The rules of this host (the current network namespace).")
    var live = false

    var isGiven: Bool { ruleset != nil || live }

    /// Reads the host's rules, all or nothing: an error exits 2, never a partial result.
    /// - Parameters:
    ///   - liveFirewall: with `--live`, iptables (iptables-save, plus other tools' nftables
    ///     tables) or nftables (the whole ruleset through libnftables).
    ///   - format: `iptables-save` or `nft-json` for `--ruleset`; nil tells them apart by content.
    func read(liveFirewall: Firewall, format: String? = nil) throws -> HostRules {
        if let ruleset {
            let data =
                ruleset == "-"
                ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: ruleset)
            guard let data else {
                printError("error: cannot read \(ruleset)")
                throw ExitCode(2)
            }
            let text = String(decoding: data, as: UTF8.self)
            let json = format.map { $0 == "nft-json" } ?? (text.drop(while: \.isWhitespace).first == "{")
            return json ? try readJSON(text, source: ruleset) : try readIptables(text, source: ruleset)
        }
        switch liveFirewall {
        case .nftables:
            do {
                return try readJSON(try LiveNftables.listJSON(), source: "nftables (live)")
            } catch let error as LiveNftables.ListError {
                printError("error: \(error)")
                throw ExitCode(2)
            }
        case .iptables:
            var text = ""
            for tool in ["iptables-save", "ip6tables-save"] {
                let save = Tool.run([tool])
                guard save.status == 0 else {
                    printError("error: \(tool) failed: \(save.error)")
                    throw ExitCode(2)
                }
                text += (tool == "ip6tables-save" ? "#### ip6tables\n" : "") + save.output
            }
            var host = try readIptables(text, source: "iptables-save (live)")
            // Other tools' nftables tables can drop what the policy accepts: read them too
            // (iptables-nft's own tables are the ones iptables-save printed).
            do {
                let others = try NftJSONReader(source: "nftables (live)").read(try LiveNftables.listJSON())
                let xtables = Set(XtablesTableKind.allCases.map(\.rawValue) + ["security"])
                for table in others.ruleset.tables
                where !(table.family != .inet && xtables.contains(table.name))
                    && host.ruleset.table(table.family, table.name) == nil
                {
                    host.ruleset.tables.append(table)
                }
                host.unreadTables += others.skippedTables
            } catch {
                // Without them the result would be partial: an error, never a clean report.
                printError("error: the nftables tables of other tools could not be read: \(error)")
                throw ExitCode(2)
            }
            return host
        }
    }

    func readJSON(_ text: String, source: String) throws -> HostRules {
        do {
            let result = try NftJSONReader(source: source).read(text)
            for warning in result.warnings { printError("warning: \(source): \(warning)") }
            return HostRules(
                ruleset: result.ruleset, source: source, firewall: .nftables, unreadTables: result.skippedTables)
        } catch {
            printError("error: \(source): \(error)")
            throw ExitCode(2)
        }
    }

    /// iptables-save text; captures may hold an ip6tables part after a '#### ip6tables' line.
    func readIptables(_ text: String, source: String) throws -> HostRules {
        var host = HostRules(source: source, firewall: .iptables)
        do {
            for (index, part) in text.components(separatedBy: "#### ip6tables").prefix(2).enumerated() {
                let (ruleset, warnings) = try IptablesSaveReader(family: index == 0 ? .ip : .ip6, source: source).read(
                    part)
                host.ruleset.tables += ruleset.tables
                for warning in warnings { printError("warning: \(source): \(warning)") }
            }
        } catch {
            printError("error: \(source): \(error)")
            throw ExitCode(2)
        }
        return host
    }
}
