import Foundation
import PortcullisIR

/// The output formats Portcullis renders the IR into.
public enum Backend: String, Sendable, CaseIterable {
    case iptables
    case nftables
    case nftablesJSON = "nftables-json"

    /// Golden and output file extension.
    public var fileExtension: String {
        switch self {
        case .iptables: "iptables"
        case .nftables: "nft"
        case .nftablesJSON: "nft.json"
        }
    }

    /// The kind of firewall the output is loaded into.
    public var firewall: Firewall {
        switch self {
        case .iptables: .iptables
        case .nftables, .nftablesJSON: .nftables
        }
    }

    public var renderer: any Renderer {
        switch self {
        case .iptables: IptablesRenderer()
        case .nftables: NftTextRenderer()
        case .nftablesJSON: NftJSONRenderer()
        }
    }
}

/// One rendered file. iptables output may come in two parts, one for `iptables-restore`
/// (`iptables`) and one for `ip6tables-restore` (`ip6tables`); the nft backends produce one.
public struct RenderedFile: Sendable, Equatable {
    /// `iptables`, `ip6tables`, `nft` or `nft.json`: the golden file extension.
    public let fileExtension: String
    public let text: String
    /// Where each rule line came from, in line order, so that a line the kernel rejects can be
    /// traced back to the policy. Searched only when something was rejected.
    public let ruleOrigins: [RuleOrigin]

    public init(fileExtension: String, text: String, ruleOrigins: [RuleOrigin] = []) {
        self.fileExtension = fileExtension
        self.text = text
        self.ruleOrigins = ruleOrigins
    }

    /// The provenance of the rule on a 1-based line of `text`, if that line is a rule.
    public func provenance(ofLine number: Int) -> Provenance? {
        var (low, high) = (0, ruleOrigins.count)
        while low < high {
            let middle = (low + high) / 2
            if ruleOrigins[middle].line < number - 1 { low = middle + 1 } else { high = middle }
        }
        return low < ruleOrigins.count && ruleOrigins[low].line == number - 1 ? ruleOrigins[low].provenance : nil
    }

    /// The provenance of the rule written as `ruleText` (without indentation), as a kernel
    /// message quotes it.
    public func provenance(ofRuleText ruleText: String) -> Provenance? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return ruleOrigins.first {
            $0.line < lines.count && lines[$0.line].trimmingCharacters(in: .whitespaces) == ruleText
        }?.provenance
    }
}

/// The statement a rule line of a rendered file came from.
public struct RuleOrigin: Sendable, Equatable {
    /// 0-based line index in the file's text.
    public let line: Int
    public let provenance: Provenance

    public init(line: Int, provenance: Provenance) {
        self.line = line
        self.provenance = provenance
    }
}

/// Text written line by line straight into one string (a large host's ruleset is tens of
/// thousands of lines; keeping them apart and joining them doubled the renderers' memory),
/// with the origin of each rule line.
struct TextLines {
    private(set) var text = ""
    private(set) var count = 0
    private(set) var origins: [RuleOrigin] = []

    mutating func append(_ line: String, from origin: Provenance? = nil) {
        if let origin { origins.append(RuleOrigin(line: count, provenance: origin)) }
        text += line
        text += "\n"
        count += 1
    }
}

public struct RenderError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public let provenance: Provenance?

    public init(_ message: String, provenance: Provenance? = nil) {
        self.message = message
        self.provenance = provenance
    }

    public var description: String {
        provenance.map { "\(message) (from \($0))" } ?? message
    }
}

/// Turns the IR into the text of one backend. One type per backend, each in its own file.
public protocol Renderer: Sendable {
    func render(_ ruleset: Ruleset) throws(RenderError) -> [RenderedFile]
}
