/// Rules for free text that a policy places into a ruleset (comments, log prefixes).
///
/// Only printable ASCII without quotes or backslashes is allowed, so such text can never close
/// a quoted token in nft or iptables-restore syntax and inject rules of its own.
public enum RulesetText {
    public static let maximumLength = 128

    /// Why `text` cannot be placed in a ruleset, or nil when it can.
    public static func problem(in text: String) -> String? {
        if text.utf8.count > maximumLength { return "is longer than \(maximumLength) bytes" }
        if let bad = text.unicodeScalars.first(where: { !$0.isASCII || $0.value < 0x20 || $0.value == 0x7F }) {
            return "contains the character U+\(String(bad.value, radix: 16, uppercase: true))"
        }
        if text.contains("\"") || text.contains("\\") { return "contains a quote or backslash" }
        return nil
    }
}
