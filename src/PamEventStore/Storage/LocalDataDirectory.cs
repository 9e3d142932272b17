namespace PamEventStore.Storage;

/// <summary>
/// <c>.pamstore/</c> (git-ignored): where a developer's machine keeps what the service makes for itself
/// outside Production: the local PostgreSQL cluster, the generated master key and token signing key.
/// </summary>
public sealed class LocalDataDirectory(string path)
{
    public string Path { get; } = System.IO.Path.GetFullPath(path);

    public static LocalDataDirectory FromConfiguration(IConfiguration configuration) =>
        new(configuration["LocalData:Directory"] ?? ".pamstore");

    public string PathOf(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>
    /// Reads a secret file, creating it first (readable by its owner only: these files hold keys) when
    /// it does not exist. Processes starting at once take turns under a lock file, so all of them read
    /// the one that was created, never a half-written one or one replaced after it was read.
    /// </summary>
    public string ReadOrCreateSecret(string name, Func<string> create)
    {
        try
        {
            return ReadOrCreate(name, create);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartRefusedException($"LocalData:Directory '{Path}' cannot hold the node's development keys: {e.Message}");
        }
    }

    private string ReadOrCreate(string name, Func<string> create)
    {
        var path = PathOf(name);
        if (File.Exists(path)) return File.ReadAllText(path);

        Directory.CreateDirectory(Path);
        using var turn = TakeTurn(PathOf(".secrets.lock"));
        if (!File.Exists(path))
        {
            var written = PathOf($".{name}.{Guid.NewGuid():N}");
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            try
            {
                using (var writer = new StreamWriter(written, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), options))
                {
                    writer.Write(create());
                }

                // Whole before the name stands for it: a process that reads without the lock (above) never sees it half-written.
                File.Move(written, path);
            }
            finally
            {
                File.Delete(written);
            }
        }

        return File.ReadAllText(path);
    }

    /// <summary>An exclusive lock on a file, waited for up to half a minute.</summary>
    private static FileStream TakeTurn(string lockFile)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(lockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (waited.Elapsed < TimeSpan.FromSeconds(30))
            {
                Thread.Sleep(5);
            }
        }
    }
}
