import Foundation

/// Where a run writes: stdout gets what the command produces (a report, a policy), stderr its
/// notes, warnings and errors. The command line passes the process's streams; tests record both.
public protocol Console: AnyObject, Sendable {
    /// Text for stdout, written as given.
    func output(_ text: String)
    /// One line for stderr.
    func note(_ line: String)
    /// What a long run is doing now (`reading host.rules (12 MB)`), on one line of a terminal
    /// that the next step, note or output replaces; "" clears it. Elsewhere, nothing.
    func progress(_ step: String)
}

extension Console {
    public func progress(_ step: String) {}
}

/// The process's own stdout and stderr. On a terminal, and unless NO_COLOR is set
/// (no-color.org), the severity words of notes are coloured as compilers colour them.
public final class StandardConsole: Console, @unchecked Sendable {
    let colours: Bool
    /// stderr is a terminal that can rewrite a line.
    let showsProgress: Bool
    /// Whether a progress line stands on stderr now (guarded by `lock`).
    private var progressShown = false
    private let lock = NSLock()

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        showsProgress = isatty(2) == 1 && environment["TERM"] != "dumb"
        colours = showsProgress && (environment["NO_COLOR"] ?? "").isEmpty
    }

    public func output(_ text: String) {
        clearProgress()
        print(text, terminator: "")
    }

    public func note(_ line: String) {
        clearProgress()
        FileHandle.standardError.write(Data(((colours ? Self.coloured(line) : line) + "\n").utf8))
    }

    public func progress(_ step: String) {
        guard showsProgress else { return }
        lock.withLock {
            // Carriage return and erase-line: the step replaces the one before, kept to one line.
            let line = step.count > 76 ? step.prefix(75) + "…" : Substring(step)
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (step.isEmpty ? "" : "…")).utf8))
            progressShown = !step.isEmpty
        }
    }

    private func clearProgress() {
        lock.withLock {
            guard progressShown else { return }
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
            progressShown = false
        }
    }

    /// The first `error:`, `warning:` or `note:` of each line (after a location, or at its
    /// start) in bold red, magenta or cyan.
    public static func coloured(_ text: String) -> String {
        let codes = ["error": "1;31", "warning": "1;35", "note": "1;36"]
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            guard let match = line.firstMatch(of: #/^(?:\S+:\d+:\d+: )?(error|warning|note):/#),
                let code = codes[String(match.1)]
            else { return String(line) }
            let word = match.1
            return line[..<word.startIndex] + "\u{1B}[\(code)m\(word)\u{1B}[0m" + line[word.endIndex...]
        }.joined(separator: "\n")
    }
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
