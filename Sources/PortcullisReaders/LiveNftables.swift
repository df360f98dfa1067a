import NftablesKit

/// The live nftables ruleset of the current network namespace, listed through libnftables as
/// JSON (the same document `nft -j list ruleset` prints, counters left out).
public enum LiveNftables {
    public struct ListError: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The ruleset as libnftables JSON text.
    public static func listJSON() throws(ListError) -> String {
        let context: NftContext
        do {
            context = try NftContext()
        } catch {
            throw ListError(message: "cannot create a libnftables context")
        }
        context.jsonOutput = true
        context.stateless = true
        let result = context.run("list ruleset")
        guard result.succeeded else {
            throw ListError(message: "libnftables 'list ruleset' failed: \(result.error)")
        }
        // An empty ruleset lists as nothing at all.
        return result.output.isEmpty ? "{\"nftables\": []}" : result.output
    }
}
