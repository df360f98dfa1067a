import ArgumentParser
import Foundation
import JanssonKit
import PortcullisCompiler
import PortcullisKernel

/// What `plan` and `apply` share: the policy, where it goes, and what the change may do.
struct ChangeOptions: ParsableArguments {
    @Argument(help: "The policy file.", completion: .file(extensions: ["policy"]))
    var policy: String

    @OptionGroup var layout: LayoutOptions
    @OptionGroup var kernel: KernelOptions

    @Flag(help: "Replace owned tables even if they hold rules Portcullis did not write (saved first).")
    var takeOver = false

    @Flag(
        help:
            "Remove the rules of bridges and containers that the policy leaves out (without it, apply refuses to cut them off)."
    )
    var prune = false

    /// The policy compiled for the kernel; exits 2 on a bad policy or without CAP_NET_ADMIN.
    func compile(for action: String) throws -> KernelInput {
        let compiled = try Compiler().compileForKernel(policy, layout: layout.layout, backend: layout.backend)
            .get(orExit: fail)
        for warning in compiled.warnings { printError(warning) }
        guard Host.hasNetAdmin else {
            printError("error: \(action) needs CAP_NET_ADMIN to read the kernel's ruleset; nothing was changed")
            throw ExitCode(2)
        }
        return compiled
    }
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what 'apply' would change on this host, changing nothing.",
        discussion: """
            Compares the ruleset the policy compiles to with what the kernel holds, as 'apply' \
            would, and prints the difference chain by chain and set by set: rules and set \
            elements added (+) and removed (-). It also says what 'apply' would refuse: tables \
            it did not write, rules changed by others, and bridges or containers whose rules the \
            policy would remove (see --prune).

            Exits 0 when apply would change nothing, 1 when it would change something, 2 on an \
            error or when apply would refuse (terraform's -detailed-exitcode convention). \
            'apply --dry-run' is the same command.

            Examples:
              portcullis plan policies/web-stack.policy
              portcullis plan policies/web-stack.policy --backend nftables --format json
            """)

    @OptionGroup var change: ChangeOptions

    @Option(help: "text or json.")
    var format: ReportFormat = .text

    func run() throws { try Self.report(change, format: format) }

    static func report(_ change: ChangeOptions, format: ReportFormat) throws {
        let compiled = try change.compile(for: "planning")
        let logger = change.kernel.logger()
        let (diff, cutOff) = try change.kernel.withSettledState(logger: logger, files: compiled.files) {
            try $0.plan(
                files: compiled.filesByExtension, backend: compiled.backend, takeOver: change.takeOver,
                knownNames: compiled.knownNames)
        }
        let refused = !cutOff.isEmpty && !change.prune
        switch format {
        case .json:
            var members: [(String, JSON)] = [
                ("schema", .string("portcullis.plan/1")), ("layout", .string(compiled.layout.name)),
                ("backend", .string(compiled.backend.rawValue)), ("changed", .bool(!diff.isEmpty)),
            ]
            if case .object(let report) = diff.json { members += report }
            members.append(
                (
                    "cut_off",
                    .object([
                        ("interfaces", .array(cutOff.interfaces.map { .string($0) })),
                        ("addresses", .array(cutOff.addresses.map { .string($0) })), ("refused", .bool(refused)),
                    ])
                ))
            print(JSON.object(members).rendered())
        case .text:
            print(diff.text, terminator: "")
            print(
                diff.isEmpty
                    ? "no changes: the kernel already holds this ruleset"
                    : "plan (\(compiled.layout.name), \(compiled.backend.rawValue)): \(diff.summary)")
        }
        if refused {
            printError("error: apply would refuse: \(cutOff.refusal)")
            throw ExitCode(2)
        }
        if !cutOff.isEmpty {
            printError(
                "warning: with --prune, the rules of \((cutOff.interfaces + cutOff.addresses).joined(separator: ", ")) are removed"
            )
        }
        if !diff.isEmpty { throw ExitCode(1) }
    }
}
