import ArgumentParser
import Foundation
import Logging
import PortcullisCompiler
import PortcullisKernel
import PortcullisRender

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a policy and apply it to this host's kernel, atomically.",
        discussion: """
            nftables backends go through libnftables as one transaction; iptables goes through \
            iptables-restore after the whole input passed 'iptables-restore --test'. Only what the \
            layout owns changes: for the Docker layouts on iptables, Docker's chains and the rules \
            Portcullis wrote in built-in chains (everyone else's chains and rules are carried over \
            with their counters); on nftables, the layout's tables (a table Portcullis did not \
            write is refused unless --take-over).

            With --alongside-docker the Docker daemon keeps writing its own rules and Portcullis \
            owns only DOCKER-USER (docker-20.10 to docker-29 on iptables; replaced with \
            'iptables-restore --noflush', Docker's chains never touched) or its portcullis-user \
            tables (docker-29 on nftables). It keeps '-j DOCKER-USER' the first rule of FORWARD \
            and says when it had to move it ('repaired: ...'); rollback puts back only what it \
            owned. A DOCKER-USER holding rules Portcullis did not write is refused unless \
            --take-over. See docs/alongside.md.

            Each apply is a generation in the state directory, recorded with a snapshot of what \
            it replaces before the kernel is touched; 'portcullis rollback' loads that snapshot \
            back. A run killed at any point is settled by the next command: the interrupted \
            generation is undone. Applying the same policy twice changes nothing the second time. \
            A policy that would remove the rules of bridges or containers it does not name (an \
            empty policy, a forgotten network) is refused unless --prune. 'portcullis plan' shows \
            the change first.

            With --confirm N the new ruleset must be confirmed within N seconds ('y' on the \
            terminal, or 'portcullis confirm' from another shell) or it is rolled back, even if \
            this process or its terminal dies meanwhile: use it when a bad rule could cut off your \
            own connection. Exits 0 when applied (or confirmed), 1 when not confirmed in time, 2 \
            on an error (nothing changed).

            Examples:
              portcullis plan policies/web-stack.policy
              portcullis apply policies/web-stack.policy --confirm 60
              portcullis apply host.policy --alongside-docker --confirm 60
              portcullis confirm 3
            """)

    @OptionGroup var change: ChangeOptions

    @Option(help: "Seconds to wait for confirmation before rolling back.")
    var confirm: Int?

    @Flag(help: "Show what would change and change nothing (the same as 'portcullis plan').")
    var dryRun = false

    @Flag(
        help:
            "With --confirm: return at once and leave the deadline to the watchdog (for automation that confirms in a later step)."
    )
    var noWait = false

    func run() throws {
        let logger = change.kernel.logger()
        if dryRun {
            return try execute {
                try $0.runPlan(try change.request(), state: change.kernel.state, format: .text, logger: logger)
            }
        }
        // On a terminal, `y` confirms too.
        let interactive = isatty(0) == 1
        let answer: (() -> Bool)? = interactive ? { answeredYes() } : nil
        let wait = confirm.map { seconds in
            ConfirmationWait(seconds: seconds, noWait: noWait, watchdog: DeadlineWatchdog(), answer: answer)
        }
        try execute {
            try $0.runApply(try change.request(), state: change.kernel.state, confirmation: wait, logger: logger)
        }
    }
}

/// Whether `y` was typed on the terminal within a tenth of a second.
func answeredYes() -> Bool {
    var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
    guard poll(&descriptor, 1, 100) > 0, let line = readLine() else { return false }
    return line.lowercased().hasPrefix("y")
}
