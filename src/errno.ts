// Linux errno numbers by name (os.constants.errno), so the code says
// EAGAIN where the native layer returns -11.
import { constants } from 'node:os';

export const { EACCES, EAGAIN, EBADF, EBUSY, ECANCELED, ECHILD, ECONNRESET, EINVAL, ENOBUFS, ENOENT, ENOEXEC, EPERM, EPIPE, EPROTO, EROFS, ESRCH, ETIMEDOUT } = constants.errno;
