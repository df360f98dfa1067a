import Foundation

/// Where a run writes: stdout gets what the command produces (a report, a policy), stderr its
/// notes, warnings and errors. The command line passes the process's streams; tests record both.
public protocol Console: AnyObject, Sendable {
    /// Text for stdout, written as given.
    func output(_ text: String)
    /// One line for stderr.
    func note(_ line: String)
}

/// The process's own stdout and stderr.
public final class StandardConsole: Console {
    public init() {}

    public func output(_ text: String) { print(text, terminator: "") }

    public func note(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
}

/// How a run ended, for the exit code: 0 when clean, 1 when it found something (audit
/// findings, golden files that differ, files not in canonical form), 2 when it failed after
/// reporting why. A run that cannot go on throws a `CompileFailure` instead (also exit 2).
public enum RunStatus: Sendable {
    case clean
    case findings
    case failed
}

/// How a report is written: for people or for programs.
public enum ReportFormat: String, CaseIterable, Sendable {
    case text
    case json
}
