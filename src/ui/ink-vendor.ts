/**
 * The one door to ink and React for hoop's terminal views. The build bundles ink, React and
 * what they need with the views (scripts/build.mjs), so the package does not install them:
 * 23 MB of dependencies for three views. Views import from here, never from 'ink' or 'react'.
 *
 * @see https://github.com/vadimdemedes/ink#readme
 */
export { Box, render, Text, useApp, useInput, useStdout, type Instance } from 'ink';
export { useCallback, useEffect, useMemo, useRef, useState, type ReactElement } from 'react';
export { Fragment, jsx, jsxs } from 'react/jsx-runtime';
