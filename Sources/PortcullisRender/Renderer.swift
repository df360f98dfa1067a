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
    /// Where each line came from (by 0-based line index; nil for lines that are not rules), so
    /// that a line the kernel rejects can be traced back to the policy. Filled as the lines are
    /// written; searched only when something was rejected.
    public let lineProvenance: [Provenance?]

    public init(fileExtension: String, text: String, lineProvenance: [Provenance?] = []) {
        self.fileExtension = fileExtension
        self.text = text
        self.lineProvenance = lineProvenance
    }

    /// The provenance of the rule on a 1-based line of `text`, if that line is a rule.
    public func provenance(ofLine number: Int) -> Provenance? {
        guard number >= 1, number <= lineProvenance.count else { return nil }
        return lineProvenance[number - 1]
    }

    /// The provenance of the rule written as `ruleText` (without indentation), as a kernel
    /// message quotes it.
    public func provenance(ofRuleText ruleText: String) -> Provenance? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, line) in lines.enumerated() where index < lineProvenance.count && lineProvenance[index] != nil {
            if line.trimmingCharacters(in: .whitespaces) == ruleText { return lineProvenance[index] }
        }
        return nil
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
