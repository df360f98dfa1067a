/// A position in a policy file; lines and columns count from 1, columns in characters.
public struct SourceLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public static func < (a: Self, b: Self) -> Bool { (a.file, a.line, a.column) < (b.file, b.line, b.column) }

    public var description: String { "\(file):\(line):\(column)" }
}

/// The span of text a token or syntax node came from (end is exclusive, on the same line
/// for every token; multi-line nodes keep their first token's line).
public struct SourceRange: Sendable, Hashable, CustomStringConvertible {
    public let start: SourceLocation
    public let length: Int

    public init(start: SourceLocation, length: Int) {
        self.start = start
        self.length = max(1, length)
    }

    public var description: String { start.description }
}

/// A value together with where it was written, so later stages can point back at it.
public struct Located<Value: Sendable & Hashable>: Sendable, Hashable {
    public let value: Value
    public let range: SourceRange

    public init(_ value: Value, at range: SourceRange) {
        self.value = value
        self.range = range
    }
}

/// An error or warning about a policy, printed as `file:line:col: error: message`, followed by
/// the offending line with a caret under the text, and a hint when there is one.
public struct Diagnostic: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable {
        case error
        case warning
        case note
    }

    public let severity: Severity
    public let message: String
    public let range: SourceRange
    public let hint: String?

    public init(_ message: String, at range: SourceRange, hint: String? = nil, severity: Severity = .error) {
        self.severity = severity
        self.message = message
        self.range = range
        self.hint = hint
    }

    public var description: String { "\(range.start): \(severity.rawValue): \(message)" }

    /// The full report: headline, source line, caret, hint.
    public func rendered(sources: SourceStore) -> String {
        var out = description
        if let text = sources.line(range.start.line, of: range.start.file) {
            let visible = text.replacingTabs()
            out += "\n    " + visible
            let pad = String(repeating: " ", count: max(0, range.start.column - 1))
            let available = max(1, visible.count - (range.start.column - 1))
            let marks = "^" + String(repeating: "~", count: max(0, min(range.length, available) - 1))
            out += "\n    " + pad + marks
        }
        if let hint { out += "\n    hint: " + hint }
        return out
    }
}

extension String {
    fileprivate func replacingTabs() -> String { String(map { $0 == "\t" ? " " : $0 }) }
}

/// Diagnostics raised while reading, parsing or checking; stages collect several before failing
/// so that one run reports every problem.
public struct DiagnosticError: Error, Sendable {
    public let diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }
}

/// The text of every file read for a policy, kept so diagnostics can quote the offending line.
/// Lines are found only when a diagnostic asks: most compilations quote none.
public struct SourceStore: Sendable {
    private var files: [String: String] = [:]

    public init() {}

    public mutating func add(file: String, text: String) { files[file] = text }

    public func line(_ number: Int, of file: String) -> String? {
        guard let text = files[file], number >= 1 else { return nil }
        // By bytes: as Characters, "\r\n" is one that is not "\n".
        let lines = text.utf8.split(separator: UInt8(ascii: "\n"), maxSplits: number, omittingEmptySubsequences: false)
        guard number <= lines.count else { return nil }
        let line = lines[number - 1]
        return String(decoding: line.last == UInt8(ascii: "\r") ? line.dropLast() : line, as: UTF8.self)
    }
}
