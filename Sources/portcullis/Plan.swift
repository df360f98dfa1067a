import ArgumentParser
import Foundation
import PortcullisCompiler
import PortcullisKernel

/// What `plan` and `apply` share: the policy, where it goes, and what the change may do.
struct ChangeOptions: ParsableArguments {
    @Argument(help: "The policy file.", completion: .file(extensions: ["policy"]))
    var policy: String

    @OptionGroup var layout: LayoutOptions
    @OptionGroup var bound: InventoryOptions
    @OptionGroup var kernel: KernelOptions

    @Flag(help: "Replace owned tables even if they hold rules Portcullis did not write (saved first).")
    var takeOver = false

    @Flag(
        help:
            "Remove the rules of bridges and containers that the policy leaves out (without it, apply refuses to cut them off)."
    )
    var prune = false

    @Flag(help: ArgumentHelp(alongsideDockerHelp))
    var alongsideDocker = false

    func request() throws -> ChangeRequest {
        ChangeRequest(
            policy: policy, layout: layout.layout, backend: layout.backend, takeOver: takeOver, prune: prune,
            inventory: try bound.source(), alongsideDocker: alongsideDocker)
    }
}

/// The help of `--alongside-docker`, the same on compile, plan, apply and audit.
let alongsideDockerHelp =
    "Leave Docker's own rules to the running daemon; own only DOCKER-USER (iptables, its jump kept first in FORWARD) or the portcullis-user tables (docker-29 on nftables)."

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what 'apply' would change on this host, changing nothing.",
        discussion: """
            Compares the ruleset the policy compiles to with what the kernel holds, as 'apply' \
            would, and prints the difference chain by chain and set by set: rules and set \
            elements added (+) and removed (-). It also says what 'apply' would refuse: tables \
            it did not write, rules changed by others, and bridges or containers whose rules the \
            policy would remove (see --prune). With --alongside-docker it compares only \
            DOCKER-USER (or the portcullis-user tables) and says when FORWARD's jump to \
            DOCKER-USER is not first ('repair: ...'), which apply then fixes.

            Exits 0 when apply would change nothing, 1 when it would change something, 2 on an \
            error or when apply would refuse (terraform's -detailed-exitcode convention). \
            'apply --dry-run' is the same command.

            Examples:
              portcullis plan policies/web-stack.policy
              portcullis plan policies/web-stack.policy --backend nftables --format json
              portcullis plan host.policy --alongside-docker
            """)

    @OptionGroup var change: ChangeOptions

    @Option(help: "text or json.")
    var format: ReportFormat = .text

    func run() throws {
        let logger = change.kernel.logger()
        try execute { try $0.runPlan(try change.request(), state: change.kernel.state, format: format, logger: logger) }
    }
}
