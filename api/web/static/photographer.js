// The photographer page: sign in with an API key, create and pick events, upload photos (files or
// folders, with per-file progress) or import them from the bucket, watch processing, retry failures
// and share the attendee link.
// ES modules, one per concern, loaded by the browser as they are (no build step).
import { whenUnauthorized } from "./photographer-api.js";
import { initDropzone } from "./photographer-dropzone.js";
import { initEvents } from "./photographer-events.js";
import { initRetry } from "./photographer-failures.js";
import { initImports } from "./photographer-imports.js";
import { countUploadsWith, initProgress, restart } from "./photographer-progress.js";
import { initSession, signIn, signOut } from "./photographer-session.js";
import { initShare } from "./photographer-share.js";
import { state } from "./photographer-state.js";
import { activeUploads, initUploads } from "./photographer-uploads.js";

whenUnauthorized((message) => signOut(message));
countUploadsWith(activeUploads);
initSession();
initEvents();
initShare();
initProgress();
initRetry(restart);
initImports(restart);
initUploads();
initDropzone();

if (state.apiKey) signIn(state.apiKey);
else signOut();
