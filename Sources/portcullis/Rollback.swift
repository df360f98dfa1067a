import ArgumentParser
import Foundation
import PortcullisKernel

struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Undo the latest apply: put back exactly what the kernel held before it, atomically.",
        discussion: """
            Each apply records a snapshot of what it replaced; rollback loads that snapshot, so \
            the kernel holds again what it held before the latest generation: Docker's rules and \
            other tools' rules as they were, and no table that the apply created. When someone \
            changed the applied rules since, rollback says what changed and refuses, because \
            loading the snapshot would undo their change too; --force loads it anyway. A \
            generation applied with --alongside-docker is rolled back the same way: only \
            DOCKER-USER (its rules, and where FORWARD jumped to it) or the portcullis-user tables.

            Exits 0 when a generation was rolled back, 1 when there is nothing to roll back, 2 on \
            an error (nothing changed).

            Example:
              portcullis rollback --state-dir /var/lib/portcullis
            """)

    @OptionGroup var kernel: KernelOptions

    @Flag(help: "Put back the snapshot even if the applied rules were changed since.")
    var force = false

    func run() throws {
        let logger = kernel.logger()
        try execute { try $0.runRollback(state: kernel.state, force: force, logger: logger) }
    }
}

struct Confirm: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Confirm an 'apply --confirm' that is waiting, so it keeps its ruleset.",
        discussion: """
            Confirms only before the deadline: a confirmation that comes later finds the \
            generation already rolled back, says so and exits 1. Giving the generation number \
            makes sure the one confirmed is the one you meant.

            Exits 0 when confirmed, 1 when nothing is waiting (or it is too late), 2 on an error.

            Example (from a second shell, while 'portcullis apply --confirm 60' waits):
              portcullis confirm 7
            """)

    @Argument(help: "The generation to confirm (default: the one waiting).")
    var generation: Int?

    @OptionGroup var kernel: KernelOptions

    func run() throws {
        let logger = kernel.logger()
        try execute { try $0.runConfirm(state: kernel.state, generation: generation, logger: logger) }
    }
}
