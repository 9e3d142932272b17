using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Npgsql;

namespace PamEventStore.LocalPostgres;

/// <summary>A PostgreSQL cluster run from the locally installed binaries (no Docker).</summary>
public sealed class PostgresCluster : IAsyncDisposable
{
    private const string Host = "127.0.0.1";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(90);
    private const int StartAttempts = 3;

    private readonly bool _throwaway;
    private readonly Action<string> _log;
    private readonly object _gate = new();
    private Task? _stopping;
    private bool _disposed;

    /// <summary>This handle's entry among the users of a kept (not throwaway) cluster; null for a throwaway one.</summary>
    private string? _userFile;

    private PostgresCluster(ClusterPaths paths, string binDirectory, int port, string database, string serverVersion,
        IReadOnlyDictionary<string, string> settings, bool startedByUs, bool throwaway, Action<string> log)
    {
        Paths = paths;
        BinDirectory = binDirectory;
        Port = port;
        ServerVersion = serverVersion;
        EffectiveSettings = settings;
        StartedByUs = startedByUs;
        _throwaway = throwaway;
        _log = log;

        // A throwaway cluster outlives a process that exits without disposing it (a killed test run,
        // Environment.Exit) unless the exit itself stops it: orphans would pile up, each a server.
        if (throwaway) AppDomain.CurrentDomain.ProcessExit += StopOnExit;
        ConnectionString = new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = port,
            Database = database,
            Username = "postgres",
        }.ConnectionString;
    }

    public string ConnectionString { get; }
    public int Port { get; }
    public string Directory => Paths.Root;
    public string BinDirectory { get; }
    public string ServerVersion { get; }
    public IReadOnlyDictionary<string, string> EffectiveSettings { get; }
    public bool StartedByUs { get; }
    private ClusterPaths Paths { get; }

    public static async Task<PostgresCluster> StartAsync(PostgresClusterOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Directory);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Database);
        if (options.Port is < 1 or > 65535) throw new ArgumentOutOfRangeException(nameof(options), options.Port, "Port must be 1..65535.");
        if (options.Settings.Keys.Any(k => k.Equals("port", StringComparison.OrdinalIgnoreCase)))
            throw new ArgumentException("Set the port through PostgresClusterOptions.Port, not Settings.", nameof(options));

        var log = options.Log ?? (_ => { });
        var clock = Stopwatch.StartNew();
        var (bin, major) = PostgresBinaries.Locate(options.BinDirectory, out var rejected)
            ?? throw new PostgresNotFoundException(rejected.Count > 0 ? string.Join("; ", rejected) : null);
        if (options.BinDirectory is not null && !SamePath(options.BinDirectory, bin))
            log($"BinDirectory {options.BinDirectory} is not usable ({string.Join("; ", rejected)}); using {bin}");

        var paths = new ClusterPaths(Path.GetFullPath(options.Directory));
        // pg_ctl starts the server through /bin/sh with the data directory and log file in double quotes.
        if (!OperatingSystem.IsWindows() && (paths.Root.IndexOfAny(['"', '$', '`', '\\']) >= 0 || paths.Root.Any(char.IsControl)))
            throw new PostgresDirectoryUnusableException(
                $"The cluster directory {paths.Root} holds a character pg_ctl cannot pass to the shell that starts the server"
                + " (a double quote, $, a backtick, a backslash or a control character). Choose a directory without one.");
        await PrepareDirectoryAsync(paths.Root, log, ct);

        var startedByUs = false;
        try
        {
            using var startLock = await LockAsync(paths.Lock, ct);
            int port;
            IReadOnlyDictionary<string, string>? settings = null;
            var initialised = File.Exists(paths.PgVersion);
            if (initialised) CheckDataVersion(paths, major);

            if (initialised && await IsRunningAsync(bin, paths, log, ct))
            {
                port = ReadRunningPort(paths);
                log($"Reusing the PostgreSQL server already running from {paths.Data} on port {port}; it keeps the settings it was started with");
            }
            else
            {
                if (!initialised) await InitDbAsync(bin, paths, fast: options.Throwaway || !options.Durable, log, ct);
                (port, settings) = await StartServerAsync(bin, paths, options, log, ct);
                startedByUs = true;
            }

            var (version, runningSettings) = await PrepareDatabaseAsync(port, options.Database, log, ct);
            var cluster = new PostgresCluster(paths, bin, port, options.Database, version, settings ?? runningSettings,
                startedByUs, options.Throwaway, log);
            if (!options.Throwaway) cluster._userFile = Users.Join(paths.Users);
            log($"PostgreSQL {version} ready at {Host}:{port}/{options.Database} ({(startedByUs ? "started" : "reused")} in {clock.ElapsedMilliseconds} ms)");
            return cluster;
        }
        catch
        {
            if (startedByUs) await TryStopAsync(bin, paths, log);
            if (options.Throwaway && (startedByUs || !File.Exists(paths.PostmasterPid))) TryDelete(paths.Root, log);
            throw;
        }
    }

    /// <summary>Stops the server (pg_ctl stop -m fast), even one this handle did not start. Idempotent.</summary>
    public Task StopAsync(CancellationToken ct = default)
    {
        lock (_gate) _stopping ??= StopCoreAsync();
        return _stopping.WaitAsync(ct);
    }

    /// <summary>Stops a throwaway cluster's server and deletes its directory; leaves a kept one, stopping its server when no other process uses it. Never throws.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        AppDomain.CurrentDomain.ProcessExit -= StopOnExit;
        // A kept cluster has an entry among its users; a throwaway one is this handle's alone.
        if (!_throwaway)
        {
            await LeaveAsync();
            return;
        }

        if (await TryStopWithinAsync()) TryDelete(Paths.Root, _log);
        else _log($"Left {Paths.Root} in place because its server may still be running");
    }

    /// <summary>
    /// A kept cluster is stopped by the last of the processes using it to leave, whichever started it: a
    /// process that reused the server of one since killed stops it in its place, and one that started it
    /// leaves it running for another still using it. Each handle leaves its entry; a killed process's entry
    /// names a process that is gone, and is passed over. The start lock is held from the count to the end
    /// of the stop, so a process starting meanwhile either counts, or finds the server stopped.
    /// </summary>
    private async Task LeaveAsync()
    {
        try
        {
            using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            using var startLock = await LockAsync(Paths.Lock, patience.Token);
            var others = Users.LeaveAndCountOthers(Paths.Users, _userFile!);
            if (others > 0) _log($"Left PostgreSQL in {Paths.Data} running for {others} other process(es) using it");
            else await TryStopWithinAsync();
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or UnauthorizedAccessException)
        {
            _log($"Could not tell whether other processes use PostgreSQL in {Paths.Data} ({e.Message}); left it running");
        }
    }

    private async Task<bool> TryStopWithinAsync()
    {
        try
        {
            await StopAsync().WaitAsync(TimeSpan.FromSeconds(30));
            return true;
        }
        catch (Exception e)
        {
            _log($"Stopping PostgreSQL in {Paths.Data} failed: {e.Message}");
            return false;
        }
    }

    private void StopOnExit(object? sender, EventArgs e) => DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));

    private async Task StopCoreAsync()
    {
        var stopped = await StopServerAsync(BinDirectory, Paths, _log, CancellationToken.None);
        if (!stopped.Ok) throw Failure(stopped.Result!, Paths.Log);
    }

    private static async Task<(bool Ok, ProcessResult? Result)> StopServerAsync(string bin, ClusterPaths paths, Action<string> log, CancellationToken ct)
    {
        if (!File.Exists(paths.PostmasterPid)) return (true, null);
        var clock = Stopwatch.StartNew();
        // Fast first (rolls back sessions, clean shutdown); immediate only if that hangs, so Dispose stays bounded.
        var result = await PgCtlAsync(bin, paths, ["stop", "-m", "fast", "-w", "-t", "15"], TimeSpan.FromSeconds(20), ct);
        if (result.ExitCode != 0 && File.Exists(paths.PostmasterPid))
        {
            log($"Fast shutdown of {paths.Data} failed ({result.StdErr}); trying immediate");
            result = await PgCtlAsync(bin, paths, ["stop", "-m", "immediate", "-w", "-t", "5"], TimeSpan.FromSeconds(8), ct);
        }
        var ok = result.ExitCode == 0 || !File.Exists(paths.PostmasterPid);
        if (ok) log($"Stopped PostgreSQL in {paths.Data} in {clock.ElapsedMilliseconds} ms");
        return (ok, result);
    }

    private static async Task TryStopAsync(string bin, ClusterPaths paths, Action<string> log)
    {
        try
        {
            await StopServerAsync(bin, paths, log, CancellationToken.None);
        }
        catch (Exception e)
        {
            log($"Stopping PostgreSQL in {paths.Data} failed: {e.Message}");
        }
    }

    private static async Task PrepareDirectoryAsync(string root, Action<string> log, CancellationToken ct)
    {
        var created = !System.IO.Directory.Exists(root);
        System.IO.Directory.CreateDirectory(root);
        if (!ProcessRunner.RunAsPostgresUser) return;

        // As root the server runs as "postgres", which must reach the directory and own it (data, socket, log).
        // Probe reachability first, so an unreachable directory is left as it was.
        var reach = await ProcessRunner.RunAsync("test", ["-x", root], "/", CommandTimeout, ct);
        if (reach.ExitCode == 0)
        {
            var chown = await ProcessRunner.RunAsync("chown", ["postgres:", root], root, CommandTimeout, ct, asPostgresUser: false);
            if (chown.ExitCode != 0) throw Failure(chown, null);
            var write = await ProcessRunner.RunAsync("test", ["-w", root], "/", CommandTimeout, ct);
            if (write.ExitCode == 0) return;
            reach = write;
        }

        if (created) TryDelete(root, log);
        throw new PostgresDirectoryUnusableException(
            $"PostgreSQL refuses to run as root, so it runs as the OS user 'postgres', and that user cannot use {root}"
            + (reach.StdErr.Length > 0 ? $" ({reach.StdErr})" : "")
            + ", most likely because a parent directory is not traversable by others (e.g. /root is 0700)."
            + $" Put the cluster somewhere 'postgres' can reach, e.g. under {Path.GetTempPath()}, or run as a non-root user.");
    }

    private static void CheckDataVersion(ClusterPaths paths, int binaryMajor)
    {
        var dataMajor = File.ReadAllText(paths.PgVersion).Trim();
        if (dataMajor != binaryMajor.ToString(CultureInfo.InvariantCulture))
            throw new InvalidOperationException(
                $"{paths.Data} was initialised by PostgreSQL {dataMajor} but the binaries found are PostgreSQL {binaryMajor}."
                + $" Delete {paths.Root} to start afresh (its data is lost), or point BinDirectory at PostgreSQL {dataMajor}.");
    }

    private static async Task<bool> IsRunningAsync(string bin, ClusterPaths paths, Action<string> log, CancellationToken ct)
    {
        if (!File.Exists(paths.PostmasterPid)) return false;
        var status = await PgCtlAsync(bin, paths, ["status"], CommandTimeout, ct);
        if (status.ExitCode != 0) return false; // not running: a stale postmaster.pid is cleared by postgres itself on start

        // After a reboot or container restart the recorded PID can belong to an unrelated process,
        // which makes both pg_ctl status and postgres itself believe the old server is alive.
        var pid = ReadPidFileLine(paths, 0);
        if (pid is null) return true;
        if (!IsPostgresProcess(pid.Value))
        {
            log($"{paths.PostmasterPid} names PID {pid}, which is not a postgres process; removing the stale file");
        }
        else if (OtherClusterOf(pid.Value, paths) is { } otherData)
        {
            log($"{paths.PostmasterPid} names PID {pid}, the postmaster of another cluster ({otherData}); removing the stale file");
        }
        else return true;

        File.Delete(paths.PostmasterPid);
        return false;
    }

    /// <summary>
    /// The data directory of the cluster whose postmaster <paramref name="pid"/> is, when that is provably
    /// not this one; null when it is this one or cannot be told (then it is taken as this one: removing the
    /// lock file of a live server would let a second postmaster start on its data). A postmaster runs in
    /// its data directory and its lock file's first three lines (PID, data directory, start time) never
    /// change while it lives, so the lock file reached through its working directory is compared with ours.
    /// </summary>
    private static string? OtherClusterOf(int pid, ClusterPaths paths)
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            var ours = File.ReadLines(paths.PostmasterPid).Take(3).ToArray();
            var theirs = File.ReadLines($"/proc/{pid}/cwd/postmaster.pid").Take(3).ToArray();
            // Theirs must name that very postmaster: read while it lives, it is its own lock file, not one
            // a server started since (on our data, had ours just stopped) wrote over it.
            return theirs.Length == 3 && ours.Length == 3 && theirs[0].Trim() == pid.ToString(CultureInfo.InvariantCulture)
                   && !theirs.SequenceEqual(ours) ? theirs[1] : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool IsPostgresProcess(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return process.ProcessName is "postgres" or "postmaster";
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static int ReadRunningPort(ClusterPaths paths) =>
        ReadPidFileLine(paths, 3) ?? ReadPortFile(paths)
        ?? throw new InvalidOperationException($"A server is running from {paths.Data} but its port is in neither {paths.PostmasterPid} nor {paths.PortFile}.");

    // postmaster.pid: PID, data directory, start time, port, socket directory, listen address, shmem key, status.
    private static int? ReadPidFileLine(ClusterPaths paths, int index)
    {
        try
        {
            var lines = File.ReadAllLines(paths.PostmasterPid);
            return lines.Length > index && int.TryParse(lines[index].Trim(), CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static int? ReadPortFile(ClusterPaths paths) =>
        File.Exists(paths.PortFile) && int.TryParse(File.ReadAllText(paths.PortFile).Trim(), CultureInfo.InvariantCulture, out var port) ? port : null;

    private static async Task InitDbAsync(string bin, ClusterPaths paths, bool fast, Action<string> log, CancellationToken ct)
    {
        if (System.IO.Directory.Exists(paths.Data) && System.IO.Directory.EnumerateFileSystemEntries(paths.Data).Any())
            throw new InvalidOperationException(
                $"{paths.Data} is not empty but holds no PostgreSQL cluster (no PG_VERSION), perhaps an interrupted initdb. Delete it and retry.");

        var clock = Stopwatch.StartNew();
        List<string> args = ["-D", paths.Data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"];
        if (fast) args.Add("--no-sync"); // skipping fsync of the fresh files only matters if the machine crashes right now
        var result = await ProcessRunner.RunAsync(Path.Combine(bin, "initdb"), args, paths.Root, CommandTimeout, ct);
        if (result.ExitCode != 0) throw Failure(result, null);
        log($"Initialised {paths.Data} in {clock.ElapsedMilliseconds} ms");
    }

    private static async Task<(int Port, IReadOnlyDictionary<string, string> Settings)> StartServerAsync(
        string bin, ClusterPaths paths, PostgresClusterOptions options, Action<string> log, CancellationToken ct)
    {
        int? port = options.Port ?? RecordedPortIfFree(paths, log);
        for (var attempt = 1; ; attempt++)
        {
            port ??= FreePort();
            var settings = BuildSettings(options, paths, port.Value, log);
            var serverOptions = string.Join(' ', settings.Select(s => "-c " + ProcessRunner.ShellQuote($"{s.Key}={s.Value}")));
            var logStart = File.Exists(paths.Log) ? new FileInfo(paths.Log).Length : 0;

            var clock = Stopwatch.StartNew();
            var result = await PgCtlAsync(bin, paths,
                ["start", "-w", "-t", "60", "-l", paths.Log, "-o", serverOptions], CommandTimeout, ct);
            if (result.ExitCode == 0)
            {
                await File.WriteAllTextAsync(paths.PortFile, port.Value.ToString(CultureInfo.InvariantCulture), ct);
                log($"Started PostgreSQL on port {port} in {clock.ElapsedMilliseconds} ms");
                return (port.Value, settings);
            }

            var serverLog = ReadLog(paths.Log, logStart);
            if (attempt < StartAttempts && options.Port is null && serverLog.Contains("Address already in use", StringComparison.Ordinal))
            {
                // Another process grabbed the port between our probe and the server's bind.
                log($"Port {port} was taken meanwhile; retrying with another one");
                port = null;
                continue;
            }
            if (attempt < StartAttempts && serverLog.Contains("pre-existing shared memory block", StringComparison.Ordinal))
            {
                // Backends of a killed postmaster take a moment to notice and let go of its shared memory.
                log("Shared memory of a previous server is still attached; retrying shortly");
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
                continue;
            }
            throw Failure(result, paths.Log, serverLog);
        }
    }

    private static Dictionary<string, string> BuildSettings(PostgresClusterOptions options, ClusterPaths paths, int port, Action<string> log)
    {
        var settings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["listen_addresses"] = Host,
            ["port"] = port.ToString(CultureInfo.InvariantCulture),
            // Debian's compiled-in default is /var/run/postgresql, which may be missing or not writable.
            ["unix_socket_directories"] = SocketDirectory(paths.Root, log),
        };
        if (!options.Durable)
        {
            settings["fsync"] = "off";
            settings["synchronous_commit"] = "off";
            settings["full_page_writes"] = "off";
        }
        foreach (var (name, value) in options.Settings) settings[name] = value;
        return settings;
    }

    private static string SocketDirectory(string root, Action<string> log)
    {
        // sun_path holds 107 bytes; postgres refuses to start rather than truncate, so fall back to TCP only.
        if (Encoding.UTF8.GetByteCount(Path.Combine(root, ".s.PGSQL.65535")) < 108) return root;
        log($"{root} is too long for a Unix socket path; the server listens on TCP only");
        return "";
    }

    private static int? RecordedPortIfFree(ClusterPaths paths, Action<string> log)
    {
        var recorded = ReadPortFile(paths);
        if (recorded is null || IsFree(recorded.Value)) return recorded;
        log($"Recorded port {recorded} is taken by another process; picking a free one");
        return null;
    }

    private static bool IsFree(int port)
    {
        try
        {
            var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    private static async Task<(string Version, IReadOnlyDictionary<string, string> Settings)> PrepareDatabaseAsync(
        int port, string database, Action<string> log, CancellationToken ct)
    {
        var admin = new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = port,
            Database = "postgres",
            Username = "postgres",
            Pooling = false, // an idle pooled admin connection would linger until the server stops
            Timeout = 5,
        }.ConnectionString;

        await using var connection = await OpenWithRetryAsync(admin, ct);

        await using (var exists = new NpgsqlCommand("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", connection))
        {
            exists.Parameters.Add(new NpgsqlParameter { Value = database });
            if (!(bool)(await exists.ExecuteScalarAsync(ct))!)
            {
                try
                {
                    await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database.Replace("\"", "\"\"")}\"", connection);
                    await create.ExecuteNonQueryAsync(ct);
                    log($"Created database {database}");
                }
                // Another process sharing this cluster created it first.
                catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
                {
                }
            }
        }

        await using var versionQuery = new NpgsqlCommand("SHOW server_version_num", connection);
        var versionNumber = Convert.ToInt32(await versionQuery.ExecuteScalarAsync(ct), CultureInfo.InvariantCulture);
        var version = $"{versionNumber / 10000}.{versionNumber % 10000}";

        // For a reused server these are the -c options it was started with, whoever started it.
        var settings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        await using var query = new NpgsqlCommand("SELECT name, current_setting(name) FROM pg_settings WHERE source = 'command line' ORDER BY name", connection);
        await using var reader = await query.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct)) settings[reader.GetString(0)] = reader.GetString(1);
        return (version, settings);
    }

    private static async Task<NpgsqlConnection> OpenWithRetryAsync(string connectionString, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var connection = new NpgsqlConnection(connectionString);
            try
            {
                await connection.OpenAsync(ct);
                return connection;
            }
            // pg_ctl -w already waited for "ready"; this covers a reused server still in recovery and slow loopback setup.
            catch (NpgsqlException e) when (deadline.Elapsed < TimeSpan.FromSeconds(15)
                                            && e is not PostgresException { SqlState: not PostgresErrorCodes.CannotConnectNow })
            {
                await connection.DisposeAsync();
                await Task.Delay(200, ct);
            }
            catch
            {
                await connection.DisposeAsync();
                throw;
            }
        }
    }

    private static Task<ProcessResult> PgCtlAsync(string bin, ClusterPaths paths, IEnumerable<string> args, TimeSpan timeout, CancellationToken ct) =>
        ProcessRunner.RunAsync(Path.Combine(bin, "pg_ctl"), ["-D", paths.Data, .. args], paths.Root, timeout, ct);

    // Serialises starts of the same directory across processes (e.g. two test runs sharing a dev cluster).
    private static async Task<FileStream> LockAsync(string path, CancellationToken ct)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (waited.Elapsed < TimeSpan.FromMinutes(2))
            {
                await Task.Delay(100, ct);
            }
        }
    }

    private static void TryDelete(string directory, Action<string> log)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
                return;
            }
            // A just-stopped server may still be removing its socket and lock files.
            catch (IOException) when (attempt < 3)
            {
                Thread.Sleep(100);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                log($"Could not delete {directory}: {e.Message}");
                return;
            }
        }
    }

    private static bool SamePath(string a, string b) =>
        Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)) == Path.TrimEndingDirectorySeparator(Path.GetFullPath(b));

    private static string ReadLog(string logFile, long from)
    {
        try
        {
            using var stream = new FileStream(logFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            stream.Seek(Math.Min(from, stream.Length), SeekOrigin.Begin);
            return new StreamReader(stream).ReadToEnd();
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static InvalidOperationException Failure(ProcessResult result, string? logFile, string? serverLog = null)
    {
        var message = new StringBuilder($"`{result.Command}` failed with exit code {result.ExitCode}.");
        if (result.StdErr.Length > 0) message.Append("\nstderr:\n").Append(result.StdErr);
        if (result.StdOut.Length > 0) message.Append("\nstdout:\n").Append(result.StdOut);
        serverLog ??= logFile is null ? "" : ReadLog(logFile, 0);
        var tail = serverLog.Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(20).ToArray();
        if (tail.Length > 0) message.Append($"\nlast lines of {logFile}:\n").AppendJoin('\n', tail);
        return new InvalidOperationException(message.ToString());
    }

    private sealed record ClusterPaths(string Root)
    {
        public string Data => Path.Combine(Root, "data");
        public string Log => Path.Combine(Root, "server.log");
        public string PortFile => Path.Combine(Root, "port");
        public string Lock => Path.Combine(Root, "start.lock");
        public string Users => Path.Combine(Root, "users");
        public string PgVersion => Path.Combine(Data, "PG_VERSION");
        public string PostmasterPid => Path.Combine(Data, "postmaster.pid");
    }
}
