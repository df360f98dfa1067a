import Foundation
import PortcullisIR
import PortcullisKernel
import PortcullisReaders
import PortcullisRender

/// The format of a saved ruleset.
public enum RulesetFormat: String, CaseIterable, Sendable {
    case iptablesSave = "iptables-save"
    case nftJSON = "nft-json"
}

/// Where a run reads a host's rules from.
public enum HostCapture: Sendable {
    /// A saved ruleset file ('-' for stdin); without a format, told apart by content.
    case file(String, format: RulesetFormat?)
    /// A saved ruleset already in memory, and the name messages quote it by.
    case text(String, source: String, format: RulesetFormat?)
    /// This host: the current network namespace.
    case live
}

/// A host's rules as read back into the IR, and where they came from.
public struct CapturedHost: Sendable {
    public var ruleset = Ruleset()
    public var source: String
    public var firewall: Firewall
    /// Tables of families the IR does not hold, named so that nobody mistakes them for read.
    public var unreadTables: [String] = []
}

/// The capture format: iptables-save output, then the ip6tables-save output after a
/// `#### ip6tables` line. `compile` writes it to stdout, and audit, explain and import read it.
public enum CaptureFormat {
    /// The line above each file after the first.
    static func separator(_ fileExtension: String) -> String { "#### " + fileExtension }

    /// Rendered files as one text, for stdout.
    public static func joined(_ files: [RenderedFile]) -> String {
        files.enumerated().map { index, file in (index > 0 ? separator(file.fileExtension) + "\n" : "") + file.text }
            .joined()
    }

    /// The iptables part and, if there is one, the ip6tables part.
    static func parts(_ text: String) -> [String] {
        let marker = separator("ip6tables")
        guard let first = text.firstRange(of: marker) else { return [text] }
        let rest = text[first.upperBound...]
        return [
            String(text[..<first.lowerBound]),
            String(rest[..<(rest.firstRange(of: marker)?.lowerBound ?? rest.endIndex)]),
        ]
    }
}

/// Reads a host's rules, all or nothing: an error is thrown, never a partial result.
struct HostReader {
    let console: any Console

    /// - Parameter liveFirewall: for `.live`, iptables (iptables-save, plus other tools'
    ///   nftables tables) or nftables (the whole ruleset through libnftables).
    func read(_ capture: HostCapture, liveFirewall: Firewall) throws -> CapturedHost {
        switch capture {
        case .file(let path, let format):
            return try readText(try Self.contents(of: path), source: path, format: format)
        case .text(let text, let source, let format):
            return try readText(text, source: source, format: format)
        case .live:
            console.progress("reading this host's \(liveFirewall.rawValue) rules")
            return liveFirewall == .nftables ? try readLiveNftables() : try readLiveIptables()
        }
    }

    /// A file's text, or stdin's for '-'.
    static func contents(of path: String) throws -> String {
        let data =
            path == "-" ? FileHandle.standardInput.readDataToEndOfFile() : FileManager.default.contents(atPath: path)
        guard let data else { throw CompileFailure.usage("cannot read \(path)") }
        return String(decoding: data, as: UTF8.self)
    }

    func readText(_ text: String, source: String, format: RulesetFormat?) throws -> CapturedHost {
        console.progress(
            "reading \(source) (\(ByteCountFormatter.string(fromByteCount: Int64(text.utf8.count), countStyle: .file)))"
        )
        let json = format.map { $0 == .nftJSON } ?? (text.drop(while: \.isWhitespace).first == "{")
        return json ? try readJSON(text, source: source) : try readIptables(text, source: source)
    }

    func readJSON(_ text: String, source: String) throws -> CapturedHost {
        do {
            let result = try NftJSONReader(source: source).read(text)
            for warning in result.warnings { console.note("warning: \(source): \(warning)") }
            return CapturedHost(
                ruleset: result.ruleset, source: source, firewall: .nftables, unreadTables: result.skippedTables)
        } catch {
            throw CompileFailure.usage("\(source): \(error)")
        }
    }

    func readIptables(_ text: String, source: String) throws -> CapturedHost {
        var host = CapturedHost(source: source, firewall: .iptables)
        do {
            for (index, part) in CaptureFormat.parts(text).enumerated() {
                let reader = IptablesSaveReader(family: index == 0 ? .ip : .ip6, source: source)
                let (ruleset, warnings) = try reader.read(part)
                host.ruleset.tables += ruleset.tables
                for warning in warnings { console.note("warning: \(source): \(warning)") }
            }
        } catch {
            throw CompileFailure.usage("\(source): \(error)")
        }
        return host
    }

    func readLiveNftables() throws -> CapturedHost {
        do {
            return try readJSON(try LiveNftables.listJSON(), source: "nftables (live)")
        } catch let error as LiveNftables.ListError {
            throw CompileFailure.usage("\(error)")
        }
    }

    /// iptables-save and ip6tables-save, plus the nftables tables of other tools: they can drop
    /// what the policy accepts (iptables-nft's own tables are the ones iptables-save printed).
    func readLiveIptables() throws -> CapturedHost {
        var text = ""
        for tool in ["iptables-save", "ip6tables-save"] {
            let save = Tool.run([tool])
            guard save.status == 0 else { throw CompileFailure.usage("\(tool) failed: \(save.error)") }
            text += (tool == "ip6tables-save" ? CaptureFormat.separator("ip6tables") + "\n" : "") + save.output
        }
        var host = try readIptables(text, source: "iptables-save (live)")
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
            throw CompileFailure.usage("the nftables tables of other tools could not be read: \(error)")
        }
        return host
    }
}
