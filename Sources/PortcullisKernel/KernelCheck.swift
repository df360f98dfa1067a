import Foundation
import NftablesKit
import PortcullisIR
import PortcullisRender

/// One problem the kernel found in a rendered ruleset, traced back to the policy where possible.
public struct KernelRejection: Error, Sendable, CustomStringConvertible {
    public let message: String
    /// The policy statement behind the rejected rule, when the kernel named a line.
    public let provenance: Provenance?

    public var description: String {
        provenance.map { "\(message)\n    from \($0)" } ?? message
    }
}

/// Asks the kernel of the current network namespace to validate rendered files without
/// changing anything: a libnftables dry run for nft text and JSON, `iptables-restore --test`
/// (and `ip6tables-restore --test`) for iptables.
public struct KernelCheck {
    public init() {}

    public func validate(_ files: [RenderedFile]) -> [KernelRejection] {
        files.compactMap { file in
            switch file.fileExtension {
            case "iptables", "ip6tables":
                let tool = file.fileExtension == "iptables" ? "iptables-restore" : "ip6tables-restore"
                let result = Tool.run([tool, "--test"], input: file.text)
                guard result.status != 0 else { return nil }
                return KernelRejection.fromIptables(result.error, file: file, tool: tool)
            default:
                return validateNft(file)
            }
        }
    }

    func validateNft(_ file: RenderedFile) -> KernelRejection? {
        guard let context = try? NftContext(dryRun: true) else {
            return KernelRejection(message: "cannot create a libnftables context", provenance: nil)
        }
        let result = context.run(file.text)
        guard !result.succeeded else { return nil }
        return KernelRejection.fromNft(result.error, file: file)
    }
}

extension KernelRejection {
    /// iptables-restore names the failing line: "iptables-restore: line 12 failed".
    public static func fromIptables(_ error: String, file: RenderedFile, tool: String) -> KernelRejection {
        let message = error.trimmingCharacters(in: .whitespacesAndNewlines)
        let line = message.firstMatch(of: #/line (\d+) failed/#).flatMap { Int($0.1) }
        return KernelRejection(
            message: "\(tool) rejected the ruleset: \(message.isEmpty ? "no message" : message)",
            provenance: line.flatMap { file.provenance(ofLine: $0) })
    }

    /// libnftables quotes the offending rule text under its message.
    public static func fromNft(_ error: String, file: RenderedFile) -> KernelRejection {
        let message = error.trimmingCharacters(in: .whitespacesAndNewlines)
        let provenance = message.split(separator: "\n").lazy.compactMap {
            file.provenance(ofRuleText: $0.trimmingCharacters(in: .whitespaces))
        }.first
        return KernelRejection(message: "libnftables rejected the ruleset: \(message)", provenance: provenance)
    }
}
