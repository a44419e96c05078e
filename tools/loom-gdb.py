# loom's gdb helper: lists a program's tasks and shows a parked task's stack.
#
#   (gdb) source tools/loom-gdb.py
#   (gdb) loom tasks [RUNTIME]   every task: id, name, state, what it waits on
#   (gdb) loom bt ID [RUNTIME]   the backtrace of task ID (parked, or ready
#                                after it has started)
#   (gdb) loom task ID           frames 1.. become task ID's (frame N, info
#                                locals, up, down); `loom task off` undoes it
#
# Works on a live process and on a core file, with the library's debug
# information (a RelWithDebInfo or Debug build): it reads the runtime's
# structures, it calls nothing in the program.
#
# The runtime is found through the thread-locals loom__tls_rt (set while a
# scheduler pass runs) and loom__tls_home (set by loom_init), on every
# thread; where gdb cannot read thread-locals (a core file without
# libthread_db), through a `rt` variable in the frames of each thread
# (loom_run, the scheduler). RUNTIME, an expression of type loom_t *, names
# one explicitly.
#
# A parked task's stack is not on any thread: its registers were saved by
# the context switch (src/fiber/switch_*.S) on the task's own stack, and the
# task record keeps the saved stack pointer. `loom bt` installs a frame
# unwinder that, for the innermost frame only, answers with those saved
# registers as the caller's, then prints gdb's own backtrace from frame 1:
# gdb unwinds the rest of the task's stack with its usual DWARF unwinders.
# Nothing in the process is changed, so it works on core files too.

import re

import gdb
import gdb.unwinder

LOOM_H_TASK = 6  # LOOM__H_TASK (src/core/handle.h)
STATES = {1: "ready", 2: "running", 3: "parked", 4: "finished"}


def _int(v):
    return int(v.cast(gdb.lookup_type("unsigned long")))


def _runtime_type():
    return gdb.lookup_type("struct loom_s").pointer()


def _runtimes_of_thread():
    found = []
    for name in ("loom__tls_rt", "loom__tls_home"):
        try:
            v = gdb.parse_and_eval(name)
            if _int(v):
                found.append(v)
        except gdb.error:
            pass
    if found:
        return found
    # No thread-locals: look for a variable `rt` in the thread's frames.
    try:
        f = gdb.newest_frame()
    except gdb.error:
        return found
    rtt = _runtime_type()
    while f is not None:
        try:
            v = f.read_var("rt")
            if v.type.strip_typedefs() == rtt.strip_typedefs() and _int(v):
                found.append(v)
                break
        except (ValueError, gdb.error, RuntimeError):
            pass
        try:
            f = f.older()
        except gdb.error:
            break
    return found


def find_runtimes(arg=None):
    """The runtimes of the program, as gdb.Value of type loom_t *."""
    if arg:
        return [gdb.parse_and_eval(arg).cast(_runtime_type())]
    seen, out = set(), []
    inf = gdb.selected_inferior()
    try:
        old = gdb.selected_thread()
    except gdb.error:
        old = None
    for th in inf.threads():
        th.switch()
        for v in _runtimes_of_thread():
            a = _int(v)
            if a not in seen:
                seen.add(a)
                out.append(v.cast(_runtime_type()))
    if old is not None and old.is_valid():
        old.switch()
    return out


def _list_entries(lst, field):
    """The task records on a loom__list_t linked through `field`."""
    ttype = gdb.lookup_type("struct loom_task_s")
    off = None
    for f in ttype.fields():
        if f.name == field:
            off = f.bitpos // 8
    link = lst["head"]
    n = 0
    while _int(link) and n < 10000000:
        addr = _int(link) - off
        yield gdb.Value(addr).cast(ttype.pointer())
        link = link["next"]
        n += 1


def tasks_of(rt):
    """Every task of runtime rt: the unfinished ones (rt->alive), then the
    finished ones nobody has joined yet (still in the handle table)."""
    out, seen = [], set()
    for t in _list_entries(rt["alive"], "alive_link"):
        out.append(t)
        seen.add(_int(t))
    n = int(rt["nhandles"])
    hs = rt["handles"]
    ttype = gdb.lookup_type("struct loom_task_s").pointer()
    for i in range(n):
        s = hs[i]
        if not _int(s["obj"]) or int(s["kind"]) != LOOM_H_TASK:
            continue
        t = s["obj"].cast(ttype)
        if _int(t) not in seen:
            out.append(t)
            seen.add(_int(t))
    return out


def task_name(t):
    name = t["name"].string(errors="replace")
    return name or "task-%d" % int(t["fiber"]["id"])


def task_id(t):
    return int(t["fiber"]["id"])


def _field_names(v):
    try:
        return {f.name for f in v.type.strip_typedefs().fields()}
    except TypeError:
        return set()


_WAIT_KINDS = None


def _wait_kinds():
    """{value: "queue get", ...} from the LOOM__W_* enumerators of this
    build's debug information (src/core/introspect.h); {} without them."""
    global _WAIT_KINDS
    if _WAIT_KINDS is None:
        _WAIT_KINDS = {}
        for name in ("UNKNOWN", "SLEEP", "LOCK", "SEM", "QUEUE_GET", "QUEUE_PUT",
                     "QUEUE_JOIN", "EVENT", "COND", "BARRIER", "CHANNEL_SEND",
                     "CHANNEL_RECV", "FUTURE", "READ", "WRITE", "DRAIN", "CONNECT",
                     "ACCEPT", "DNS", "JOIN", "GATHER", "WAIT", "AS_COMPLETED",
                     "GROUP", "THREAD", "PROCESS", "FILE", "SIGNAL", "FD", "HTTP",
                     "REQ"):
            try:
                v = int(gdb.parse_and_eval("LOOM__W_" + name))
            except gdb.error:
                continue
            word = {"SEM": "semaphore", "COND": "condition"}.get(name, name)
            _WAIT_KINDS[v] = word.lower().replace("_", " ")
    return _WAIT_KINDS


def _wait_reason(t, rt):
    """The wait reason the park site recorded (kind and object), if this
    build records one: "sleep until +250 ms", "lock 0x55... <accounts>"."""
    w = t["wait"]
    if not _int(w) or "kind" not in _field_names(w.dereference()):
        return ""
    kind = int(w["kind"])
    word = _wait_kinds().get(kind)
    if not kind or word is None:
        return ""
    obj = _int(w["obj"])
    if word == "sleep":
        try:
            left = obj - int(rt["loop"]["time"])
            return "sleep until %+d ms" % left
        except gdb.error:
            return "sleep"
    if word in ("gather", "wait", "fd"):
        return "%s (%d)" % (word, obj)
    if not obj:
        return word
    # gdb names a static object: "0x5555555580a0 <accounts>".
    ptr = gdb.Value(obj).cast(gdb.lookup_type("void").pointer())
    return "%s %s" % (word, str(ptr))


def wait_words(t, rt, deep):
    """What a parked task waits on, as far as the record and stack say."""
    words = _wait_reason(t, rt)
    if deep:
        # The loom call it is parked in (loom_sleep, loom_lock_acquire...).
        site = _park_site(t, rt)
        if site:
            return "%s (in %s)" % (words, site) if words else "in " + site
    if words:
        return words
    w = t["wait"]
    if _int(w) and _int(w["cancel"]):
        # The waiter's cancel hook hints at the kind of wait.
        b = gdb.block_for_pc(_int(w["cancel"]))
        if b is not None and b.function is not None:
            return "via %s" % b.function.name
    return ""


def _arch():
    try:
        return gdb.selected_frame().architecture().name()
    except gdb.error:
        return gdb.selected_inferior().architecture().name()


def _is_ucontext():
    ctx = gdb.lookup_type("loom__ctx_t").strip_typedefs()
    return any(f.name == "uc" for f in ctx.fields())


def saved_registers(t):
    """The registers a switched-out task resumes with: {name: int}."""
    ulong_p = gdb.lookup_type("unsigned long").pointer()
    arch = _arch()
    ctx = t["fiber"]["ctx"]
    if _is_ucontext():
        if "x86-64" not in arch:
            raise gdb.GdbError("loom bt: the ucontext backend is read on x86_64 only")
        g = ctx["uc"]["uc_mcontext"]["gregs"]
        # glibc's REG_* indexes (sys/ucontext.h).
        idx = {"r12": 4, "r13": 5, "r14": 6, "r15": 7, "rbp": 10, "rbx": 11,
               "rsp": 15, "rip": 16}
        return {r: int(g[i]) & 0xFFFFFFFFFFFFFFFF for r, i in idx.items()}
    sp = _int(ctx["sp"])
    m = gdb.Value(sp).cast(ulong_p)
    if "x86-64" in arch:
        return {"r15": int(m[1]), "r14": int(m[2]), "r13": int(m[3]),
                "r12": int(m[4]), "rbx": int(m[5]), "rbp": int(m[6]),
                "rip": int(m[7]), "rsp": sp + 64}
    if "aarch64" in arch:
        regs = {"x%d" % (19 + i): int(m[i]) for i in range(10)}
        regs.update({"x29": int(m[10]), "x30": int(m[11]), "pc": int(m[11]),
                     "sp": sp + 160})
        return regs
    raise gdb.GdbError("loom bt: no saved-frame layout for %s" % arch)


class _TaskUnwinder(gdb.unwinder.Unwinder):
    """Makes the innermost frame's caller the suspended task's innermost
    frame, while `regs` is set (only during `loom bt`)."""

    def __init__(self):
        super().__init__("loom-task")
        self.regs = None

    def __call__(self, pending):
        if self.regs is None:
            return None
        level = pending.level() if hasattr(pending, "level") else None
        if level is not None and level != 0:
            return None
        pc_name = "rip" if "rip" in self.regs else "pc"
        sp_name = "rsp" if "rsp" in self.regs else "sp"

        class FrameId:
            def __init__(self, sp, pc):
                self.sp = sp
                self.pc = pc

        fid = FrameId(pending.read_register(sp_name), pending.read_register(pc_name))
        info = pending.create_unwind_info(fid)
        for name, val in self.regs.items():
            info.add_saved_register(name, gdb.Value(val))
        if level is None:
            self.regs = None  # old gdb: answer for the first frame asked only
        return info


_unwinder = _TaskUnwinder()
gdb.unwinder.register_unwinder(None, _unwinder, replace=True)


def _find_task(ident, rtarg):
    for rt in find_runtimes(rtarg):
        for t in tasks_of(rt):
            if task_id(t) == ident:
                return rt, t
    return None, None


class _TaskFrames:
    """While in use, gdb's frames from frame 1 on are task t's."""

    def __init__(self, t):
        self.regs = saved_registers(t)

    def __enter__(self):
        try:
            self.old = gdb.selected_frame()
        except gdb.error:
            self.old = None
        _unwinder.regs = self.regs
        gdb.invalidate_cached_frames()
        return self

    def __exit__(self, *exc):
        _unwinder.regs = None
        gdb.invalidate_cached_frames()
        if self.old is not None:
            try:
                self.old.select()
            except gdb.error:
                pass
        return False


_LOOM_SRC = None


def _loom_src():
    """The directory of loom's sources, as the debug information names
    them (the parent of src/core/, where loom__suspend is)."""
    global _LOOM_SRC
    if _LOOM_SRC is None:
        _LOOM_SRC = ""
        try:
            sym = gdb.lookup_global_symbol("loom__suspend") or \
                gdb.lookup_static_symbol("loom__suspend")
            if sym is not None and sym.symtab is not None:
                path = sym.symtab.fullname()
                _LOOM_SRC = path[: path.rfind("/core/") + 1] if "/core/" in path else ""
        except (gdb.error, AttributeError):
            pass
    return _LOOM_SRC


def _is_loom_frame(f):
    name = f.name() or ""
    root = _loom_src()
    if root:
        sal = f.find_sal()
        if sal.symtab is not None:
            return sal.symtab.fullname().startswith(root)
    return name.startswith("loom")


def _park_site(t, rt):
    """The loom call task t is parked in: of the loom frames innermost on
    its stack, the outermost public one (loom_lock_acquire), else the
    outermost at all (the compiler may have tail-called the public call
    into an internal one and dropped its frame)."""
    try:
        with _TaskFrames(t):
            f = gdb.newest_frame().older()
            n, public, last = 0, "", ""
            while f is not None and n < 32:
                if not _is_loom_frame(f):
                    break  # the program's own code
                name = f.name() or ""
                last = name or last
                if name.startswith("loom_") and not name.startswith("loom__"):
                    public = name
                f = f.older()
                n += 1
            return public or last
    except gdb.error:
        pass
    return ""


def _started(t):
    """Whether t has a stack: a task gets one at its first switch-in, and
    until then its context is not its own (a reused record's)."""
    return _int(t["fiber"]["stack_lo"]) != 0


def _backtrace(t, rt):
    """gdb's backtrace of task t's suspended stack, as text."""
    state = int(t["state"])
    if state == 2 or _int(rt["current"]) == _int(t):
        # Running: its stack is the thread's.
        return gdb.execute("bt", to_string=True)
    if state == 4:
        return "(finished: no stack)\n"
    if not _started(t):
        return "(not started: no stack yet)\n"
    with _TaskFrames(t):
        text = gdb.execute("bt", to_string=True)
    # Frame 0 is the thread's own, the task's stack starts at frame 1.
    out = []
    for line in text.splitlines():
        m = re.match(r"#(\d+)(\s.*)", line)
        if m:
            n = int(m.group(1))
            if n == 0:
                continue
            out.append("#%-3d%s" % (n - 1, m.group(2).lstrip()))
        elif out:
            out.append(line)
    return "\n".join(out) + "\n"


class LoomPrefix(gdb.Command):
    """loom's commands: loom tasks, loom bt ID."""

    def __init__(self):
        super().__init__("loom", gdb.COMMAND_DATA, prefix=True)


class LoomTasks(gdb.Command):
    """List every task of every runtime: loom tasks [RUNTIME-EXPR]."""

    def __init__(self):
        super().__init__("loom tasks", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        rts = find_runtimes(arg.strip() or None)
        if not rts:
            print("loom: no runtime found (no loom__tls_rt/loom__tls_home on any "
                  "thread); give one: loom tasks EXPR")
            return
        for rt in rts:
            ts = sorted(tasks_of(rt), key=task_id)
            # Finding the call each task is parked in unwinds its stack:
            # for a few hundred tasks at most.
            deep = len(ts) <= 500
            cur = _int(rt["current"])
            print("runtime 0x%x: %d task%s" % (_int(rt), len(ts), "" if len(ts) == 1 else "s"))
            print("  %6s  %-24s %-9s %s" % ("ID", "NAME", "STATE", "WAITING ON"))
            for t in ts:
                st = STATES.get(int(t["state"]), "?%d" % int(t["state"]))
                if _int(t) == cur:
                    st = "running"
                flags = []
                if int(t["cancelled"]):
                    flags.append("cancelled")
                if int(t["is_main"]):
                    flags.append("main")
                if "system" in _field_names(t.dereference()) and int(t["system"]):
                    flags.append("loom")  # the monitor's own
                extra = wait_words(t, rt, deep) if st == "parked" else ""
                if flags:
                    extra = (extra + " " if extra else "") + "[" + ",".join(flags) + "]"
                print("  %6d  %-24s %-9s %s" % (task_id(t), task_name(t), st, extra))


class LoomBt(gdb.Command):
    """Backtrace of a task by its id: loom bt ID [RUNTIME-EXPR]."""

    def __init__(self):
        super().__init__("loom bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        argv = gdb.string_to_argv(arg)
        if not argv:
            raise gdb.GdbError("usage: loom bt ID [RUNTIME-EXPR]")
        try:
            ident = int(argv[0], 0)
        except ValueError:
            raise gdb.GdbError("loom bt: '%s' is not a task id" % argv[0])
        rt, t = _find_task(ident, argv[1] if len(argv) > 1 else None)
        if t is None:
            raise gdb.GdbError("loom bt: no task %d" % ident)
        st = STATES.get(int(t["state"]), "?")
        print("task %d '%s' (%s)" % (ident, task_name(t), st))
        gdb.write(_backtrace(t, rt))


class LoomTask(gdb.Command):
    """Make a task's frames gdb's: loom task ID [RUNTIME-EXPR] | loom task off.

    From then on, frame 1 and up are the task's suspended frames, so that
    `frame N`, `info locals`, `print` and `up`/`down` work in them; frame 0
    stays the thread's own. `loom task off` gives the thread its frames
    back (so does resuming the program)."""

    def __init__(self):
        super().__init__("loom task", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        argv = gdb.string_to_argv(arg)
        if not argv or argv[0] == "off":
            _unwinder.regs = None
            gdb.invalidate_cached_frames()
            return
        if not hasattr(gdb.PendingFrame, "level"):
            raise gdb.GdbError("loom task: needs gdb 11 or later (loom bt works)")
        try:
            ident = int(argv[0], 0)
        except ValueError:
            raise gdb.GdbError("loom task: '%s' is not a task id" % argv[0])
        rt, t = _find_task(ident, argv[1] if len(argv) > 1 else None)
        if t is None:
            raise gdb.GdbError("loom task: no task %d" % ident)
        if int(t["state"]) == 4 or _int(rt["current"]) == _int(t) or not _started(t):
            raise gdb.GdbError("loom task: task %d has no suspended stack" % ident)
        _unwinder.regs = saved_registers(t)
        gdb.invalidate_cached_frames()
        gdb.execute("frame 1")


def _on_resume(event):
    _unwinder.regs = None


gdb.events.cont.connect(_on_resume)

LoomPrefix()
LoomTasks()
LoomBt()
LoomTask()
