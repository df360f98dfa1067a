import ArgumentParser
import Foundation
import PortcullisCompiler
import PortcullisLayouts
import PortcullisRender
import PortcullisSyntax

@main
struct Portcullis: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portcullis",
        abstract: "Compile container-host firewall policies into nftables and iptables rulesets.",
        discussion: """
            A policy file declares networks, containers, published ports and the flows between \
            them. Portcullis compiles it into the exact rules a given Docker version writes (or its \
            own native layout), so the rules can be reviewed, pinned by golden files and diffed.

            Exit codes, for every command:
              0  done, and nothing found
              1  something found: differences (diff, plan, fmt --check), findings
                 (audit), another verdict than --expect (explain), nothing to do
                 (rollback, confirm), an apply not confirmed in time (rolled back)
              2  not done: bad input or usage, a ruleset the kernel rejected, a
                 change apply refuses, a check the kernel could not make
            """,
        version: PortcullisVersion.current,
        subcommands: [
            Compile.self, Check.self, Plan.self, Apply.self, Rollback.self, Confirm.self, Diff.self, Explain.self,
            Audit.self, Import.self, Inventory.self, Watch.self, Status.self, Fmt.self, Graph.self, Test.self,
            Lint.self, ConfirmDeadline.self, ProbeCommand.self,
        ])

    /// Runs the command line, with usage errors exiting 2 like every other bad input
    /// (ArgumentParser's own default is 64).
    static func main() {
        lineBufferStandardOutput()
        do {
            try refuseUnknownCommand(Array(CommandLine.arguments.dropFirst()))
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

extension Portcullis {
    /// A first word that is no subcommand and no option: an error naming the closest command
    /// (ArgumentParser would only say "unexpected argument").
    static func refuseUnknownCommand(_ arguments: [String]) throws {
        guard let word = arguments.first, !word.hasPrefix("-"), word != "help" else { return }
        let commands = configuration.subcommands
        guard !commands.contains(where: { $0._commandName == word }) else { return }
        let names = commands.filter { $0.configuration.shouldDisplay }.map { $0._commandName }
        printError(
            "error: unknown command '\(word)'"
                + (closestMatch(word, in: names).map { "; did you mean '\($0)'?" } ?? "")
                + "\n    commands: \(names.joined(separator: ", ")) (see 'portcullis --help')")
        throw ExitCode(2)
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
    let application = Application()
    defer { application.console.progress("") }
    do {
        status = try run(application)
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
            discussion: Layouts.all.map { "\($0.name): \($0.summary)" }.joined(separator: "\n")),
        completion: .list(Layouts.names))
    var layout: String?

    @Option(
        name: .customLong("backend"),
        help: ArgumentHelp(
            "Output format (default: the policy's 'backend' if the layout takes it, else the first the layout takes: iptables, or nftables for native)."
        ))
    var backendChoice: Backend?

    /// The backend's name, as the application layer takes it.
    var backend: String? { backendChoice?.rawValue }
}

extension Backend: ExpressibleByArgument {}
