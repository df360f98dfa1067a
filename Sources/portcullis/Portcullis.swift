import ArgumentParser
import Foundation
import PortcullisCompiler
import PortcullisLayouts
import PortcullisRender

@main
struct Portcullis: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portcullis",
        abstract: "Compile container-host firewall policies into nftables and iptables rulesets.",
        discussion: """
            A policy file declares networks, containers, published ports and the flows between
            them. Portcullis compiles it into the exact rules a given Docker version writes (or its
            own native layout), so the rules can be reviewed, pinned by golden files and diffed.

            Exit codes: 0 ok, 1 differences found, 2 bad input or usage.
            """,
        subcommands: [
            Compile.self, Check.self, Plan.self, Apply.self, Rollback.self, Confirm.self, Diff.self, Explain.self,
            Audit.self, Import.self, Inventory.self, Fmt.self, Graph.self, ConfirmDeadline.self,
        ])

    /// Runs the command line, with usage errors exiting 2 like every other bad input
    /// (ArgumentParser's own default is 64).
    static func main() {
        lineBufferStandardOutput()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Makes stdout line-buffered even into a pipe or a file, so that an outcome line is never lost
/// in a buffer when the process is killed later (as during an apply's confirmation wait).
/// glibc's `stdout` is looked up by name: Swift 6 refuses to read the C global directly.
func lineBufferStandardOutput() {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "stdout"),
        let stream = symbol.load(as: UnsafeMutablePointer<FILE>?.self)
    else { return }
    setvbuf(stream, nil, _IOLBF, 0)
}

/// Prints a line to stderr, as the application layer does.
func printError(_ text: String) { StandardConsole().note(text) }

/// Exit code 2: bad input or usage.
func fail(_ failure: CompileFailure) -> ExitCode {
    printError(failure.report)
    return ExitCode(2)
}

/// Runs a command's one call into the application layer: findings exit 1; a failure exits 2,
/// its report on stderr.
func execute(_ run: (Application) throws -> RunStatus) throws {
    let status: RunStatus
    do {
        status = try run(Application())
    } catch let failure as CompileFailure {
        throw fail(failure)
    }
    switch status {
    case .clean: return
    case .findings: throw ExitCode(1)
    case .failed: throw ExitCode(2)
    }
}

struct LayoutOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Which ruleset layout to write (default: the policy's 'layout', else docker-20.10).",
            discussion: Layouts.all.map { "\($0.name): \($0.summary)" }.joined(separator: "\n")))
    var layout: String?

    @Option(
        help: ArgumentHelp(
            "Output format: \(Backend.allCases.map(\.rawValue).joined(separator: ", ")) (default: the policy's 'backend', else iptables)."
        ))
    var backend: String?
}
